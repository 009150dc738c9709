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

#ifdef __cplusplus
}
#endif
#endif
