/*
 * Error codes the gateway itself produces (DESIGN §7).  The JSON body is
 * {"errorCode": "...", "errorMessage": "...", "requestId": "..."} and the
 * same code travels in the x-fc-error-type header.
 */
#ifndef FC_ERRORS_H
#define FC_ERRORS_H

#define FC_ERR_FUNCTION_NOT_FOUND       "FunctionNotFound"          /* 404 */
#define FC_ERR_CLIENT_TIMEOUT           "ClientTimeout"             /* 408 */
#define FC_ERR_REQUEST_TOO_LARGE        "RequestTooLarge"           /* 413, 431 */
#define FC_ERR_INSTANCE_CRASHED         "InstanceCrashed"           /* 502 */
#define FC_ERR_BAD_RESPONSE             "BadResponse"               /* 502 */
#define FC_ERR_QUEUE_FULL               "QueueFull"                 /* 503 */
#define FC_ERR_QUEUE_TIMEOUT            "QueueTimeout"              /* 503 */
#define FC_ERR_INITIALIZATION_FAILED    "InitializationFailed"      /* 503 */
#define FC_ERR_RUNNER_UNAVAILABLE       "RunnerUnavailable"         /* 503 */
#define FC_ERR_FUNCTION_TIMEOUT         "FunctionTimeout"           /* 504 */

/* Header that carries the error code on gateway-produced errors. */
#define FC_ERROR_TYPE_HEADER            "x-fc-error-type"

#endif /* FC_ERRORS_H */
