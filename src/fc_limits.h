/*
 * Limits shared by the nginx module and the runner.  Every limit has a name
 * here (or a config key that defaults to one of these) and a test at the limit.
 */
#ifndef FC_LIMITS_H
#define FC_LIMITS_H

/* Wire protocol v1 frame header: version, type, flags(2), length(4). */
#define FC_FRAME_HEADER_SIZE        8

/* Largest payload of one frame (DESIGN §3).  A larger length closes the
 * connection.  Body bytes bigger than this travel as several DATA frames. */
#define FC_MAX_FRAME_PAYLOAD        (1024 * 1024)

/* Largest REQUEST/RESPONSE/ERROR metadata frame: headers are bounded by
 * this, separately from body bytes. */
#define FC_MAX_META_PAYLOAD         (64 * 1024)

/* Largest number of header pairs carried in one REQUEST or RESPONSE. */
#define FC_MAX_HEADERS              256

/* Largest function name (FC rule: [A-Za-z_][A-Za-z0-9_-]{0,127}). */
#define FC_MAX_FUNCTION_NAME        128

/* The longest waits the runner's config accepts (runner/config.cc): a
 * function's `timeout`, `initializationTimeout` and `maxQueueTime`, in
 * seconds.  Without fc_read_timeout the module waits for their sum. */
#define FC_MAX_FUNCTION_TIMEOUT_S        86400
#define FC_MAX_INITIALIZATION_TIMEOUT_S  600
#define FC_MAX_QUEUE_TIME_S              86400

#endif /* FC_LIMITS_H */
