/* placeholder: replaced by the codec implementation */
#include "fc_proto.h"
