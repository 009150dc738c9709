/* http.h: what the server's files share (server.c, conn.c, response.c):
 * the connection and server structs, and the calls between the files. */
#ifndef SOON_HTTP_INTERNAL_H
#define SOON_HTTP_INTERNAL_H

#include <soon/http.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Buffers grown past this (a large body) are freed once the connection is
 * idle again: one big request does not pin its memory for good. */
#define BUF_KEEP (64 * 1024)

/* ------------------------------------------------------------ types */

typedef union any_stream {
  soon_handle h;
  soon_stream s;
  soon_tcp tcp;
  soon_pipe pipe;
} any_stream;

typedef struct obuf {
  char *base;
  size_t len, cap;
} obuf;

/* Where a connection's input stands. */
enum {
  RS_HEAD,    /* reading a request's head (none begun: idle) */
  RS_BODY,    /* gathering the body, before the handler */
  RS_HANDLER, /* the handler holds the request */
  RS_DRAIN,   /* answered; the rest of the body is read and dropped */
  RS_FINAL,   /* no more requests: close once the output has gone */
  RS_LINGER,  /* written and shut down: dropping input until EOF */
  RS_CLOSED
};

/* The response of the request the handler holds. */
enum { RESP_NONE, RESP_STREAM, RESP_ENDED };

/* The one soon_http_write a request may have waiting. */
enum {
  UW_NONE,
  UW_QUEUED, /* its bytes wait in out[fill], after a write in flight */
  UW_SENT,   /* in the write in flight */
  UW_OWED    /* no bytes to send (HEAD, empty): told from the deferral */
};

/* soon_http_req_read's reader. */
enum { RD_NONE, RD_NEW, RD_ON, RD_DONE };

typedef struct soon__http_conn conn;

struct soon__http_conn {
  conn *prev, *next;           /* the server's connections */
  conn *owed_prev, *owed_next; /* the server's owed work */
  soon_http_server *server;
  any_stream *stream; /* apart: an upgrade hands it over */
  soon_timer timer;   /* the earliest of the two deadlines */
  uint64_t read_deadline, send_deadline;
  size_t send_mark; /* bytes queued at the last send check */
  /* input: the message from msg, its head hlen bytes; bpos the first byte
   * the parser has not consumed; gathered body bytes at msg + hlen */
  char *ibuf;
  size_t icap, ilen, msg, hlen, bpos, blen;
  /* output: new bytes go to out[fill]; out[fill ^ 1] is in flight */
  obuf out[2];
  soon_write_req wreq[2];
  soon_shutdown_req shut;
  unsigned fill, nwriting;
  size_t wbytes; /* in flight */
  /* the request's one waiting soon_http_write, or file range (ufile >= 0:
   * the connection's, closed once the write is told) */
  const char *udata;
  size_t ulen, uat; /* its bytes go after out[fill][0..uat) */
  int ufile;
  int64_t uoff;
  soon_write_req fwreq; /* the file range's write */
  soon_http_write_cb ucb;
  /* states */
  unsigned char rs, resp, uw, reader;
  bool held;        /* the handler holds req */
  bool advancing;   /* in soon__http_advance: it flushes at the end */
  bool again;       /* a response ended in soon__http_advance: step again */
  bool owed;        /* on the server's owed list */
  bool reading;     /* soon_read_start'ed */
  bool peer_eof;    /* the client finished sending */
  bool close_after; /* no further request: close once answered */
  bool head_started, body_done, cont_sent, head_req;
  bool keep, chunked, nobody;
  bool stream_closed, timer_closed, detached;
  int abort_err;       /* close from the deferral (a call cannot close) */
  unsigned busy;       /* soon callbacks of ours on the stack: no free */
  unsigned nreqs;      /* requests begun on the connection */
  int status;          /* of the response to the request held */
  uint64_t body_bytes; /* its body bytes queued */
  struct sockaddr_storage peer; /* the client's, once asked */
  unsigned peer_len;            /* 0: not asked yet */
  int64_t left; /* bytes of the streamed body still declared, or -1 */
  soon_http_body_cb body_cb;
  soon_http_req req;
  soon_http_parser p;
  soon_http_header headers[]; /* max_headers */
};

typedef struct workers workers;

struct soon_http_server {
  soon_loop *loop;
  soon_http_server_options o; /* defaults filled */
  soon_http_handler handler;
  any_stream *listener;
  bool is_unix;
  int port;
  soon_timer timer; /* the grace period; a retry to accept */
  soon_idle defer;  /* the owed work, run in the next idle phase */
  conn *conns;      /* every connection struct alive */
  conn *owed_head, *owed_tail;
  unsigned nowed;
  unsigned nconns; /* open, against max_connections */
  unsigned nopen;  /* streams not yet closed */
  bool paused;     /* a connection waits: not accepted (limit, memory) */
  bool listened, closing, finishing, closed;
  /* Whether a whole response is first written directly (soon_try_write):
   * on readiness backends it saves the write request and its callback;
   * in io_uring, sends batched into the next wait are cheaper than a
   * syscall each. */
  bool try_first;
  unsigned nclosing; /* the server's own handles closing */
  uint64_t grace;
  soon_http_server_close_cb close_cb;
  workers *workers;
  /* "HTTP/1.1 200 OK\r\n" and the Date line, rebuilt at most once a
   * second: the usual head's start in one copy */
  char date[64];
  bool date_set;
  uint64_t date_at;
};

/* ------------------------------------------------------------ shared */

static inline uint64_t soon__http_now(const conn *c) {
  return soon_now(c->server->loop);
}

void soon__http_conn_maybe_free(conn *c);

/* While a callback of ours runs, what it calls may end the connection:
 * the struct is freed only once the outermost one returns. */
static inline void soon__http_enter(conn *c) { c->busy++; }

static inline void soon__http_leave(conn *c) {
  if (--c->busy == 0)
    soon__http_conn_maybe_free(c);
}

/* Output not yet gone: the buffer being filled, the write in flight and
 * the handler's waiting bytes. */
static inline size_t soon__http_out_pending(const conn *c) {
  return c->out[c->fill].len + c->wbytes + (c->uw == UW_QUEUED ? c->ulen : 0);
}

/* ------------------------------------------------------------ server.c */

/* Work a call cannot do inside itself (a callback, the next request): in
 * the next idle phase (soon__http_run_owed), never re-entrantly. */
void soon__http_owe(conn *c);
void soon__http_unowe(conn *c);
/* Off the server's list of connections. */
void soon__http_unlist(soon_http_server *s, conn *c);
/* A connection closed: accept again if the limit or memory held it. */
void soon__http_resume_accept(soon_http_server *s);
/* Closing and nothing left open: close the server's own handles. */
void soon__http_server_check(soon_http_server *s);
void soon__http_maybe_free_server(soon_http_server *s);

/* ------------------------------------------------------------ conn.c */

/* A connection struct for s with its stream's memory, not yet accepted. */
conn *soon__http_conn_new(soon_http_server *s);
/* Accepted into c->stream and listed: start reading its first request. */
void soon__http_conn_start(conn *c);
/* Close the stream now; what is owed still gets told. */
void soon__http_conn_close(conn *c, int err);
/* Take the connection as far as it goes, then write and arm the timer. */
void soon__http_advance(conn *c);
/* The deferred work of one connection (from the server's idle handle). */
void soon__http_run_owed(conn *c);
/* Close from the deferral: for calls that cannot close inside themselves. */
void soon__http_fail_later(conn *c, int err);
/* The request is over once its response ended and its last write told. */
void soon__http_try_finish(conn *c);
/* The request the handler held is over (held just went false): the
 * server's on_done. */
void soon__http_done(conn *c);
/* A call on a request whose connection died: -EPIPE, and the request is
 * released. */
int soon__http_release_dead(conn *c);

/* ------------------------------------------------------------ response.c */

/* Free a buffer grown large once it is empty. */
void soon__http_obuf_trim(obuf *b);
/* Start writing what the output holds, unless a write is in flight. */
void soon__http_flush(conn *c);
/* Before a handover (upgrade): write what is waiting now. */
int soon__http_flush_before_handover(conn *c);
/* The handler's write callback, once. */
void soon__http_tell_write(conn *c, int status);

/* The server's own answers: a rejected request (status, Connection:
 * close, no more requests), or a failed handler's 500. */
void soon__http_reject(conn *c, int status);
void soon__http_respond_error(conn *c, int status);
/* Expect: 100-continue: whether the interim answer is still due; send it. */
bool soon__http_continue_due(const conn *c);
void soon__http_send_continue(conn *c);

#endif
