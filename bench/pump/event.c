/* pump/event.c: conns= bufferevent clients keep two 64 KiB buffers queued
 * (by reference), servers count every byte; Gbit/s. */
#include "common.h"
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#define BUFSZ 65536
#define INFLIGHT 2

typedef struct client {
  struct bufferevent *bev;
  uint64_t queued; /* bytes handed to the bufferevent */
  int done;
} client;

typedef struct sconn {
  uint64_t recvd;
} sconn;

static struct event_base *base;
static struct evconnlistener *listener;
static struct event *stop_timer;
static client *clients;
static int nconns, naccepted, nconnected, neof, nclosed, stopping;
static uint64_t received, received_at_stop, t_start, t_stop;
static double duration;
static char wbuf[BUFSZ];

static void top_up(client *c) {
  struct evbuffer *out = bufferevent_get_output(c->bev);
  while (evbuffer_get_length(out) < INFLIGHT * BUFSZ) {
    BENCH_OK(evbuffer_add_reference(out, wbuf, BUFSZ, NULL, NULL));
    c->queued += BUFSZ;
  }
}

/* Called once the output has drained to the low watermark (BUFSZ while
 * running, 0 once stopping: then everything is written and it may close). */
static void client_write(struct bufferevent *bev, void *arg) {
  client *c = arg;
  if (!stopping) {
    top_up(c);
    return;
  }
  if (evbuffer_get_length(bufferevent_get_output(bev)) == 0 && !c->done) {
    c->done = 1;
    bufferevent_free(bev); /* everything is written: close sends FIN */
    nclosed++;
  }
}

static void client_event(struct bufferevent *bev, short what, void *arg) {
  (void)arg;
  if (!(what & BEV_EVENT_CONNECTED))
    bench_fail("client event %#x: %s", what, strerror(errno));
  (void)bev;
  if (++nconnected < nconns)
    return;
  t_start = bench_ns();
  struct timeval tv = {(time_t)duration,
                       (suseconds_t)((duration - (time_t)duration) * 1e6)};
  BENCH_OK(evtimer_add(stop_timer, &tv));
  for (int i = 0; i < nconns; i++)
    top_up(&clients[i]);
}

static void on_stop(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what, (void)arg;
  /* On a loaded machine the stop can come before the first byte is read:
   * nothing would be measured, so the run goes on for one more period. */
  if (!received) {
    struct timeval tv = {(time_t)duration,
                         (suseconds_t)((duration - (time_t)duration) * 1e6)};
    BENCH_OK(evtimer_add(stop_timer, &tv));
    return;
  }
  stopping = 1;
  t_stop = bench_ns();
  received_at_stop = received;
  for (int i = 0; i < nconns; i++) {
    bufferevent_setwatermark(clients[i].bev, EV_WRITE, 0, 0);
    /* An already empty output would never call back again. */
    client_write(clients[i].bev, &clients[i]);
  }
}

static void server_read(struct bufferevent *bev, void *arg) {
  sconn *c = arg;
  struct evbuffer *in = bufferevent_get_input(bev);
  size_t n = evbuffer_get_length(in);
  unsigned char first;
  BENCH_CHECK(evbuffer_copyout(in, &first, 1) == 1);
  if (first != (unsigned char)wbuf[c->recvd % BUFSZ])
    bench_fail("stream corrupted at %llu", (unsigned long long)c->recvd);
  BENCH_OK(evbuffer_drain(in, n));
  c->recvd += n;
  received += n;
}

static void server_event(struct bufferevent *bev, short what, void *arg) {
  (void)arg;
  if (what & BEV_EVENT_ERROR)
    bench_fail("server: %s", strerror(errno));
  if (what & BEV_EVENT_EOF) {
    bufferevent_free(bev);
    if (++neof == nconns)
      evconnlistener_free(listener);
  }
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd,
                      struct sockaddr *sa, int len, void *arg) {
  (void)l, (void)sa, (void)len, (void)arg;
  sconn *c = calloc(1, sizeof *c);
  BENCH_CHECK(c && naccepted < nconns);
  naccepted++;
  struct bufferevent *bev =
      bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
  BENCH_CHECK(bev);
  /* Read 64 KiB at a time, as the other implementations do. */
  BENCH_OK(bufferevent_set_max_single_read(bev, BUFSZ));
  bufferevent_setcb(bev, server_read, NULL, server_event, c);
  BENCH_OK(bufferevent_enable(bev, EV_READ));
}

int main(int argc, char **argv) {
  char name[64];
  nconns = (int)bench_arg(argc, argv, "conns", 1);
  duration = bench_arg(argc, argv, "duration", 0.5);
  snprintf(name, sizeof name, "pump-%d", nconns);
  for (int i = 0; i < BUFSZ; i++)
    wbuf[i] = (char)bench_pattern((uint64_t)i);
  bench_nofile(2 * (unsigned long)nconns + 64);
  base = event_base_new();
  BENCH_CHECK(base);
  stop_timer = evtimer_new(base, on_stop, NULL);
  clients = calloc((size_t)nconns, sizeof *clients);
  BENCH_CHECK(clients && stop_timer);

  struct sockaddr_in addr = bench_loopback(0);
  listener = evconnlistener_new_bind(
      base, on_accept, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 1024,
      (struct sockaddr *)&addr, sizeof addr);
  BENCH_CHECK(listener);
  socklen_t len = sizeof addr;
  BENCH_OK(getsockname(evconnlistener_get_fd(listener),
                       (struct sockaddr *)&addr, &len));
  for (int i = 0; i < nconns; i++) {
    client *c = &clients[i];
    c->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    BENCH_CHECK(c->bev);
    bufferevent_setcb(c->bev, NULL, client_write, client_event, c);
    bufferevent_setwatermark(c->bev, EV_WRITE, BUFSZ, 0);
    BENCH_OK(bufferevent_socket_connect(c->bev, (struct sockaddr *)&addr,
                                        sizeof addr));
  }
  BENCH_OK(event_base_dispatch(base));

  BENCH_CHECK(neof == nconns && naccepted == nconns && nclosed == nconns);
  uint64_t sent = 0;
  for (int i = 0; i < nconns; i++)
    sent += clients[i].queued;
  bench_pump_check(sent, received, received_at_stop);
  event_free(stop_timer);
  event_base_free(base);
  bench_result(name, "libevent",
               (double)received_at_stop * 8 /
                   ((double)(t_stop - t_start) / 1e9) / 1e9,
               "Gbit/s");
  free(clients);
  return 0;
}
