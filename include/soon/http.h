/* soon/http.h: the HTTP/1.1 message parser (src/http/parser.c): strict,
 * incremental, zero-copy, allocation-free. docs/http.md is its contract. */
#ifndef SOON_HTTP_H
#define SOON_HTTP_H

#include <soon.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ errors */

/* Why a message was rejected: negative, outside the errno range (as
 * SOON_EOF and SOON_EAI_*), so soon_strerror and soon_err_name know them.
 * soon_http_error_status maps each to the status a server answers. */
#define SOON_HTTP_EMETHOD (-3100)  /* method not a token */
#define SOON_HTTP_ETARGET (-3101)  /* target empty, or CTL, SP, non-ASCII */
#define SOON_HTTP_EVERSION (-3102) /* malformed HTTP-version */
#define SOON_HTTP_EVERSION_UNSUP                                               \
  (-3103)                               /* well-formed, not 1.0 or 1.1: 505    \
                                         */
#define SOON_HTTP_ESTATUS (-3104)       /* status code not 100..599 */
#define SOON_HTTP_EREASON (-3105)       /* CTL in the reason phrase */
#define SOON_HTTP_ELINE_END (-3106)     /* bare CR, or LF without CR */
#define SOON_HTTP_EHEADER_NAME (-3107)  /* empty, not a token, SP before ':' */
#define SOON_HTTP_EHEADER_VALUE (-3108) /* NUL or another CTL in a value */
#define SOON_HTTP_EOBS_FOLD (-3109)     /* a line starting with SP or HTAB */
#define SOON_HTTP_ECONTENT_LENGTH (-3110) /* invalid, duplicate, >= 2^63 */
#define SOON_HTTP_ETE_AND_CL                                                   \
  (-3111) /* Transfer-Encoding and Content-Length                              \
           */
#define SOON_HTTP_ETRANSFER_ENCODING                                           \
  (-3112) /* chunked not last (request), twice,                                \
             in HTTP/1.0, or malformed */
#define SOON_HTTP_ETE_UNSUP                                                    \
  (-3113)                       /* a request coding other than chunked: 501 */
#define SOON_HTTP_EHOST (-3114) /* HTTP/1.1 request without Host, or two */
#define SOON_HTTP_EHEAD_SIZE (-3115)      /* head over limits.max_head: 431 */
#define SOON_HTTP_EHEADER_COUNT (-3116)   /* more headers than the array: 431 */
#define SOON_HTTP_ETARGET_SIZE (-3117)    /* request line over max_head: 414 */
#define SOON_HTTP_EBODY_SIZE (-3118)      /* body over limits.max_body: 413 */
#define SOON_HTTP_ECHUNK_SIZE (-3119)     /* not hex, overflow, 0x, +, spaces */
#define SOON_HTTP_ECHUNK_EXT (-3120)      /* malformed chunk extension */
#define SOON_HTTP_ECHUNK_EXT_SIZE (-3121) /* extension over max_chunk_ext */
#define SOON_HTTP_ECHUNK_END (-3122)      /* chunk data not followed by CRLF */
#define SOON_HTTP_ETRAILER (-3123)        /* malformed trailer field */
#define SOON_HTTP_ETRUNCATED (-3124)      /* the connection ended mid-message */
#define SOON_HTTP_EDONE (-3125)           /* its head or body parsed already */

/* The status a server answers for err: 400, 413, 414, 431, 501 or 505
 * (400 for anything it does not know). */
SOON_EXTERN int soon_http_error_status(int err);

/* ------------------------------------------------------------------ types */

/* Bytes in the caller's buffer: nothing is copied. */
typedef struct soon_http_span {
  const char *base;
  size_t len;
} soon_http_span;

typedef struct soon_http_header {
  soon_http_span name, value; /* value without its leading/trailing OWS */
} soon_http_header;

typedef enum soon_http_type {
  SOON_HTTP_REQUEST,
  SOON_HTTP_RESPONSE
} soon_http_type;

/* How the body is delimited (RFC 9112 section 6.3). */
typedef enum soon_http_body {
  SOON_HTTP_BODY_NONE,    /* no body: GET without length, HEAD, 1xx, 204, 304 */
  SOON_HTTP_BODY_LENGTH,  /* content_length bytes */
  SOON_HTTP_BODY_CHUNKED, /* chunked, then trailers */
  SOON_HTTP_BODY_CLOSE    /* a response that ends when the connection does */
} soon_http_body;

/* Limits; 0 in a field means its default. */
typedef struct soon_http_limits {
  size_t max_head;      /* request/status line + headers: 8 KiB */
  size_t max_chunk_ext; /* bytes of one chunk's extensions: 256 */
  uint64_t max_body;    /* decoded body bytes: 1 MiB (nginx's default) */
} soon_http_limits;

#define SOON_HTTP_MAX_HEAD 8192
#define SOON_HTTP_MAX_HEADERS 100 /* a good size for the header array */
#define SOON_HTTP_MAX_CHUNK_EXT 256
#define SOON_HTTP_MAX_BODY (1u << 20)

/* Flags the head sets in soon_http_parser.flags, from the headers that the
 * server and client act on, recognised once while scanning. */
enum {
  SOON_HTTP_KEEP_ALIVE = 1u << 0,      /* the connection may carry another */
  SOON_HTTP_CONN_CLOSE = 1u << 1,      /* Connection: close */
  SOON_HTTP_CONN_KEEP_ALIVE = 1u << 2, /* Connection: keep-alive */
  SOON_HTTP_CONN_UPGRADE = 1u << 3,    /* Connection: upgrade */
  SOON_HTTP_UPGRADE = 1u << 4, /* Upgrade with Connection: upgrade, or CONNECT:
                                  the bytes after the head are not HTTP */
  SOON_HTTP_EXPECT_CONTINUE = 1u << 5, /* Expect: 100-continue */
  SOON_HTTP_EXPECT_OTHER = 1u << 6,    /* another Expect (a server's 417) */
  SOON_HTTP_HAS_LENGTH = 1u << 7,      /* a Content-Length header */
  SOON_HTTP_HAS_TE = 1u << 8           /* a Transfer-Encoding header */
};

/* One message at a time; soon_http_parser_reset starts the next one on
 * the same connection. The caller owns the memory; the public fields are
 * the results, valid once soon_http_parse_head returned > 0. */
typedef struct soon_http_parser {
  /* the head */
  soon_http_span method, target; /* requests */
  int status;                    /* responses */
  soon_http_span reason;         /* responses; may be empty */
  unsigned version_minor;        /* HTTP/1.<version_minor>: 0 or 1 */
  soon_http_header *headers;     /* the caller's array, from init */
  unsigned nheaders;
  soon_http_span host; /* the Host value (requests), else empty */
  unsigned flags;      /* SOON_HTTP_KEEP_ALIVE, ... */
  soon_http_body body;
  uint64_t content_length; /* SOON_HTTP_BODY_LENGTH: the body's size */
  /* Set by a client before parsing a response to HEAD: it has no body,
   * whatever its headers say. Cleared by reset. */
  bool head_request;
  /* The rejection: its code, and the offset of the byte at fault (from the
   * head's first byte, or the body's for body errors). */
  int error;
  size_t error_offset;
  /* private: one message's state, zeroed by reset */
  size_t line;    /* the head: where the next line to parse starts */
  size_t whole;   /* the head: where its whole lines end (after an LF) */
  size_t scan;    /* the head: where the search for an LF resumes */
  uint64_t left;  /* the body: bytes left in the length or the chunk */
  uint64_t total; /* the body: decoded bytes so far */
  size_t ext;     /* the body: bytes of extensions, or of trailers */
  size_t offset;  /* the body: bytes consumed so far */
  unsigned state; /* where the head or the body's framing stands */
  unsigned seen;  /* headers met once already (duplicate checks) */
  /* private: the connection's, kept by reset */
  soon_http_type type;
  unsigned max_headers;
  soon_http_limits limits;
} soon_http_parser;

/* Ready a parser for a message of this type. headers is an array of
 * nheaders entries that the parsed headers go into (nheaders is the header
 * count limit; SOON_HTTP_MAX_HEADERS is a good size). limits may be NULL
 * for the defaults. -EINVAL for a bad type, NULL p, or headers NULL with
 * nheaders > 0. */
SOON_EXTERN int soon_http_parser_init(soon_http_parser *p, soon_http_type type,
                                      soon_http_header *headers,
                                      unsigned nheaders,
                                      const soon_http_limits *limits);
/* Ready it for the next message on the same connection, with the same
 * type, array and limits. */
SOON_EXTERN void soon_http_parser_reset(soon_http_parser *p);

/* Parse the head in buf[0..len): every byte from the head's first, the
 * bytes received so far (the buffer may move between calls, but the bytes
 * already passed must not change). Returns the head's length once it is
 * complete (the body, or the next message, starts there), 0 when it needs
 * more bytes, or a negative SOON_HTTP_E* (also in p->error, with
 * p->error_offset; SOON_HTTP_EDONE, once the head is parsed, is not a
 * rejection and leaves p->error alone). Each call resumes where the last
 * stopped, so a head arriving one byte at a time costs time linear in its
 * length. Leading empty lines before a request line are skipped (RFC 9112
 * section 2.2). */
SOON_EXTERN ssize_t soon_http_parse_head(soon_http_parser *p, const char *buf,
                                         size_t len);

/* Parse body bytes buf[0..len), after the head. Returns the bytes consumed
 * (> 0 unless len is 0), and points *data at the body bytes among them (a
 * span inside buf, possibly empty: chunk framing consumes bytes and yields
 * none); call again with the rest. Or a
 * negative SOON_HTTP_E* (SOON_HTTP_EDONE once the message is complete;
 * -EINVAL before the head). soon_http_message_done tells when the body (and
 * any trailers, checked and dropped) has ended; bytes after it belong to
 * the next message. */
SOON_EXTERN ssize_t soon_http_parse_body(soon_http_parser *p, const char *buf,
                                         size_t len, soon_http_span *data);

/* The same, decoding in place: the body bytes in buf[0..len) are moved to
 * its front. Returns the bytes consumed (everything, unless the message
 * ended before len) and sets *data_len to the body bytes now at buf[0..),
 * or a negative SOON_HTTP_E*. */
SOON_EXTERN ssize_t soon_http_decode_body(soon_http_parser *p, char *buf,
                                          size_t len, size_t *data_len);

/* The connection ended: 0 if that ends the message cleanly (a
 * close-delimited body, or nothing of a new message begun), else
 * SOON_HTTP_ETRUNCATED. */
SOON_EXTERN int soon_http_parse_eof(soon_http_parser *p);

/* Whether the message is complete: head and body. */
SOON_EXTERN bool soon_http_message_done(const soon_http_parser *p);

/* The value of the first header called name (case-insensitive), or NULL. */
SOON_EXTERN const soon_http_span *
soon_http_header_get(const soon_http_parser *p, const char *name);

/* ------------------------------------------------------------------ server */

/* An HTTP/1.1 server on soon's streams and the parser above (src/http/:
 * server.c, conn.c, response.c, file.c; docs/http.md, "The server"). The
 * server object is soon's (made by soon_http_server_new, freed after its
 * close callback); each request is a soon_http_req the handler answers,
 * now or later. */
typedef struct soon_http_server soon_http_server;
typedef struct soon_http_req soon_http_req;

/* Called on the connection's loop once per request: when its head and its
 * whole body are in (or the head alone, with stream_body). Return 0 and
 * answer, now or later, with exactly one of soon_http_respond,
 * soon_http_respond_file or soon_http_write_head (then soon_http_write and
 * soon_http_end); or take the connection over (soon_http_req_upgrade).
 * Return a negative errno to have the server answer 500 itself (the
 * handler must not have started a response then). The next request on the
 * connection is handled once this one's response has ended: responses to
 * pipelined requests go out in request order. Never called for a request
 * the server rejected (400, 408, 413, 414, 431, 501, 505). A request held
 * for a later answer stays allocated until the handler calls on it again,
 * even if its connection died meanwhile (the call then returns -EPIPE and
 * releases it): every request must get that one more call. */
typedef int (*soon_http_handler)(soon_http_req *req);

/* Body bytes of a stream_body request as they arrive, then once with len 0
 * and status 0 at its end; or status < 0 if the request failed (a timeout,
 * a framing error, the peer gone): the server drops the connection after
 * the callback and the handler must not answer any more. */
typedef void (*soon_http_body_cb)(soon_http_req *req, int status,
                                  const char *data, size_t len);
/* The bytes of one soon_http_write left (status 0), or the connection
 * failed (status < 0): the handler's data may be freed either way. The
 * server holds at most one write's bytes per request while waiting: write
 * the next from this callback (backpressure). */
typedef void (*soon_http_write_cb)(soon_http_req *req, int status);
typedef void (*soon_http_server_close_cb)(soon_http_server *server);
/* A request is over: the handler's, once its response ended and the
 * handler heard of its last write, or the connection failed under it; or
 * one the server refused itself (400, 408, 413, 417, 431, 501, 505...),
 * once its answer is queued, the handler never called. status is the
 * response's (0: the server sent none: the connection failed first, or
 * the request was upgraded), body_bytes the body bytes queued for sending
 * (0 for HEAD). A refused request whose head was not whole has an empty
 * method and target. Once per request, possibly from inside the handler's
 * last call; the request's spans are still valid, and nothing may be
 * called on it but soon_http_req_peername. What an access log needs
 * (soon-serve's is one). */
typedef void (*soon_http_done_cb)(soon_http_req *req, int status,
                                  uint64_t body_bytes);

/* Options; 0 in any field means its default (nginx's where it has one). */
typedef struct soon_http_server_options {
  soon_http_limits limits;       /* head 8 KiB, body 1 MiB, chunk ext 256 */
  unsigned max_headers;          /* 100 */
  unsigned max_connections;      /* 1024: more wait in the listen backlog */
  unsigned max_requests;         /* per connection, then close: 1000 */
  uint64_t header_timeout_ms;    /* a request's head, whole: 60 s (408) */
  uint64_t body_timeout_ms;      /* between two reads of a body: 60 s */
  uint64_t keepalive_timeout_ms; /* idle between requests: 75 s */
  uint64_t send_timeout_ms;      /* between two writes that progress: 60 s */
  int backlog;                   /* listen(2)'s: 511 */
  /* N loops in N threads (this one and N - 1 the server starts), each
   * with its own listener on the same port (SO_REUSEPORT), the handler
   * called on each: it must then be thread-safe. 0 or 1: this loop. */
  unsigned threads;
  bool stream_body; /* the handler at head time, the body by soon_http_req_read
                     */
  void *data;       /* the caller's, soon_http_server_data returns it */
  soon_http_done_cb on_done; /* NULL: none */
} soon_http_server_options;

/* What the handler gets. The spans point into the server's buffer and
 * stay valid until the response has ended. */
struct soon_http_req {
  void *data; /* the handler's */
  soon_http_server *server;
  soon_loop *loop; /* the connection's (with threads > 1, one of several) */
  soon_http_span method, target;
  soon_http_span path,
      query;              /* target split at the first '?' (query without it) */
  unsigned version_minor; /* HTTP/1.0 or 1.1 */
  const soon_http_header *headers;
  unsigned nheaders;
  unsigned flags; /* the parser's: SOON_HTTP_KEEP_ALIVE, EXPECT_CONTINUE,
                     UPGRADE... */
  uint64_t content_length; /* as declared; the chunked body's size once in */
  soon_http_span body;     /* the whole body (unless stream_body) */
  struct soon__http_conn *conn; /* private */
};

/* A server on loop calling handler; *out is freed by soon after the close
 * callback of soon_http_server_close. -EINVAL for NULL arguments or a
 * limit out of range. */
SOON_EXTERN int soon_http_server_new(soon_loop *loop,
                                     const soon_http_server_options *opts,
                                     soon_http_handler handler,
                                     soon_http_server **out);
/* Listen on a numeric address ("127.0.0.1", "::1", "0.0.0.0", "::") and
 * port (0: one the kernel picks, soon_http_server_port says which), or on
 * a Unix socket path. Once per server (-EALREADY; -EINVAL once closing).
 * -EADDRINUSE, -EACCES, ... */
SOON_EXTERN int soon_http_server_listen(soon_http_server *server,
                                        const char *ip, int port);
SOON_EXTERN int soon_http_server_listen_unix(soon_http_server *server,
                                             const char *path);
/* The bound TCP port; -ENOTCONN when not listening, -EINVAL on a Unix
 * socket. */
SOON_EXTERN int soon_http_server_port(const soon_http_server *server);
SOON_EXTERN void *soon_http_server_data(const soon_http_server *server);
/* Graceful shutdown: stop accepting, close idle connections at once, let
 * requests in flight finish for up to grace_ms, then close the rest; cb
 * runs once everything is closed (never from inside this call; may be
 * NULL). -EINVAL for NULL, -EALREADY when closing already. */
SOON_EXTERN int soon_http_server_close(soon_http_server *server,
                                       uint64_t grace_ms,
                                       soon_http_server_close_cb cb);

/* The value of the request's first header called name (any case), or
 * NULL. */
SOON_EXTERN const soon_http_span *soon_http_req_header(const soon_http_req *req,
                                                       const char *name);

/* The whole response in one call: the status line, Date, Content-Length,
 * Connection when it closes, the caller's headers, the body (copied: the
 * caller's memory is free again on return; one writev per read batch).
 * HEAD gets the same headers without the body. -EINVAL for a status
 * outside 200..999 (100 Continue is the server's to send, 101 goes on an
 * upgraded stream) or headers the server sets itself (Content-Length,
 * Transfer-Encoding, Date, Connection but for "Connection: close", which
 * asks the server to close after this response), -EALREADY when this
 * request has its response already, -EPIPE when the connection died under
 * it (the request is then done with). */
SOON_EXTERN int soon_http_respond(soon_http_req *req, int status,
                                  const soon_http_header *headers,
                                  unsigned nheaders, const void *body,
                                  size_t len);
/* A streamed response: the head now, then soon_http_write as often as
 * wanted, then soon_http_end. content_length < 0 means unknown: chunked
 * for HTTP/1.1, until the close for 1.0. soon_http_write does not copy:
 * data stays the caller's until cb (which may be NULL); one write at a
 * time (-EBUSY while one waits). A callback with status < 0 ends the
 * request: nothing more may be called on it. After soon_http_end the
 * request is done with. */
SOON_EXTERN int soon_http_write_head(soon_http_req *req, int status,
                                     const soon_http_header *headers,
                                     unsigned nheaders, int64_t content_length);
SOON_EXTERN int soon_http_write(soon_http_req *req, const void *data,
                                size_t len, soon_http_write_cb cb);
/* soon_http_write of len bytes of the file fd from offset, sent with
 * sendfile (soon_write_file): no copy through the handler. The server owns
 * fd from the call, whatever it returns (it closes it once the write is
 * told). A file that ends before the range fails the write (-ENODATA) and
 * closes the connection: its length was promised. */
SOON_EXTERN int soon_http_write_file(soon_http_req *req, int fd, int64_t offset,
                                     size_t len, soon_http_write_cb cb);
SOON_EXTERN int soon_http_end(soon_http_req *req);
/* A file as the response (src/http/file.c), from an open fd the server
 * owns from then on (it closes it): Last-Modified and a strong ETag from
 * fstat; If-None-Match / If-Modified-Since answered 304; a single Range
 * answered 206 (416 when it cannot be satisfied, multiple ranges get the
 * whole file); HEAD without the body. status is 200 or an error page's
 * (404 with a page, say: then no conditional or range). */
/* The client's address (getpeername), kept by the connection from the
 * first call, so that it can still be told once the connection is gone
 * (from on_done): 0 and *len set, -ENOTCONN if it was never asked while
 * the connection was open, -EINVAL for NULL arguments; *len too short:
 * the address cut, as getpeername does. */
SOON_EXTERN int soon_http_req_peername(const soon_http_req *req,
                                       struct sockaddr *addr, int *len);
SOON_EXTERN int soon_http_respond_file(soon_http_req *req, int status, int fd,
                                       const soon_http_header *headers,
                                       unsigned nheaders);
/* stream_body: read the body through cb (an interim 100 Continue goes out
 * first if the client expects it). A handler that answers without reading
 * the body has it drained and discarded (or the connection closed if it is
 * larger than limits.max_body), never mistaken for the next request. */
SOON_EXTERN int soon_http_req_read(soon_http_req *req, soon_http_body_cb cb);
/* An Upgrade or CONNECT request (SOON_HTTP_UPGRADE in flags): take the
 * connection. *stream is the open TCP or Unix stream, no longer read by
 * the server, and *rest (malloc'd, the caller frees it; NULL if none) the
 * bytes already received after the head. The request is done with; the
 * stream is the caller's to answer on and to close, and its memory too
 * (the server malloc'd it: free it in the close callback). -EINVAL without
 * SOON_HTTP_UPGRADE, -EALREADY once a response began. */
SOON_EXTERN int soon_http_req_upgrade(soon_http_req *req, soon_stream **stream,
                                      soon_buf *rest);

/* ------------------------------------------------------------------ client */

/* An HTTP/1.1 client shaped like the browser's XMLHttpRequest
 * (src/http/client.c; docs/http.md, "The client"): open, set headers and
 * callbacks, send; exactly one of onload, onerror, ontimeout runs per send,
 * never from inside soon_xhr_send, and none after soon_xhr_abort. Requests
 * share a soon_http_client: one loop's pool of keep-alive connections. */
typedef struct soon_http_client soon_http_client;
typedef struct soon_xhr soon_xhr;

typedef struct soon_http_client_options {
  unsigned max_idle_per_host; /* idle keep-alive connections kept: 6 */
  uint64_t idle_timeout_ms;   /* an idle connection is closed after: 30 s */
  uint64_t max_age_ms;        /* nor reused when older than: 5 min */
} soon_http_client_options;

/* A client on loop (opts may be NULL: the defaults above). */
SOON_EXTERN int soon_http_client_new(soon_loop *loop,
                                     const soon_http_client_options *opts,
                                     soon_http_client **out);
/* Close its idle connections and free it once they are closed (cb, never
 * from inside the call; may be NULL). -EBUSY while a request is in flight
 * (a request's own onload/onerror/ontimeout may close it: the request no
 * longer counts then). Idle connections do not keep soon_run going, but
 * soon_loop_close is -EBUSY until the client is closed. Idle xhrs need
 * not be cleaned up first; once the client is freed, soon_xhr_cleanup is
 * all they allow. */
SOON_EXTERN int soon_http_client_close(soon_http_client *client,
                                       void (*cb)(soon_http_client *client));

typedef void (*soon_xhr_cb)(soon_xhr *xhr);
/* A network failure: DNS (SOON_EAI_*), refused, reset, a timeout when no
 * ontimeout is set (-ETIMEDOUT), a malformed
 * response (a SOON_HTTP_E*), a response over max_response (-EFBIG),
 * https (-EPROTONOSUPPORT until TLS exists). Not an HTTP status: a 404 is
 * an onload. */
typedef void (*soon_xhr_error_cb)(soon_xhr *xhr, int err);
/* Response body bytes so far, and the total when known (else -1). */
typedef void (*soon_xhr_progress_cb)(soon_xhr *xhr, uint64_t loaded,
                                     int64_t total);
/* soon_xhr_send_stream's source: fill buf[0..cap) and return the bytes,
 * 0 at the end, or a negative errno (the request fails with it). */
typedef ssize_t (*soon_xhr_body_cb)(soon_xhr *xhr, char *buf, size_t cap);

struct soon_xhr {
  void *data; /* the caller's */
  /* set before soon_xhr_send */
  soon_xhr_cb onload;
  soon_xhr_error_cb onerror;
  soon_xhr_cb ontimeout;
  soon_xhr_progress_cb onprogress; /* optional */
  uint64_t timeout_ms;         /* the whole request, redirects included: none */
  uint64_t connect_timeout_ms; /* each connection: 10 s */
  uint64_t max_response;       /* body bytes before -EFBIG: 16 MiB */
  unsigned max_redirects;      /* followed: 20 */
  bool no_redirects;           /* hand 3xx to onload instead */
  /* the response, valid in onload and until the next open or cleanup */
  int status; /* 0 until a response came */
  soon_http_span status_text;
  const char *response; /* responseText: the body, NUL-terminated (bytes:
                            the browser's length counts UTF-16 units) */
  size_t response_len;
  const soon_http_header *headers;
  unsigned nheaders;
  const char *url;        /* the final URL, after redirects */
  struct soon__xhr *priv; /* private */
};

/* Ready xhr for requests through client. The xhr must not move in memory
 * until soon_xhr_cleanup; data is left alone; NULL callbacks are allowed
 * (they do nothing). */
SOON_EXTERN int soon_xhr_init(soon_xhr *xhr, soon_http_client *client);
/* method is a token ("GET", "POST", ...); url is http://host[:port]/path?q
 * (IPv6 in brackets) or https://... (refused at send). -EINVAL for a
 * malformed URL or method, -EBUSY while a request is in flight. */
SOON_EXTERN int soon_xhr_open(soon_xhr *xhr, const char *method,
                              const char *url);
/* A request header (copied). Host, Content-Length, Transfer-Encoding and
 * Connection are the client's (-EINVAL). */
SOON_EXTERN int soon_xhr_set_header(soon_xhr *xhr, const char *name,
                                    const char *value);
/* Send, with body[0..len) (copied; NULL, 0 for none). Returns 0 (then one
 * callback later) or -EINVAL / -EBUSY (then none). */
SOON_EXTERN int soon_xhr_send(soon_xhr *xhr, const void *body, size_t len);
/* Send with a body pulled from cb as the connection takes it: length
 * bytes, or chunked when length < 0. Not retried: a failure is onerror. */
SOON_EXTERN int soon_xhr_send_stream(soon_xhr *xhr, int64_t length,
                                     soon_xhr_body_cb cb);
/* Stop the request: no callback runs after this. No-op when idle. */
SOON_EXTERN void soon_xhr_abort(soon_xhr *xhr);
/* getResponseHeader: the first response header called name, or NULL. */
SOON_EXTERN const soon_http_span *soon_xhr_get_header(const soon_xhr *xhr,
                                                      const char *name);
/* Free what the xhr holds (aborting a request in flight). */
SOON_EXTERN void soon_xhr_cleanup(soon_xhr *xhr);

#ifdef __cplusplus
}
#endif
#endif
