// Identifiers the runner makes up: request ids (when nginx sent none) and
// instance ids.  Random, not secret.
#pragma once

#include <string>

namespace fc {

std::string new_request_id();   // "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
std::string new_instance_id();  // "c-xxxxxxxxxxxx"

}  // namespace fc
