/* pingpong/event.c: conns= clients and server on bufferevents, one
 * event_base, one 5-byte ping in flight each; round trips per second. */
#include "common.h"
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#define PING "PING\n"
#define PING_LEN 5

typedef struct client {
  struct bufferevent *bev;
  uint64_t sent, recvd;
} client;

static struct event_base *base;
static struct evconnlistener *listener;
static struct event *stop_timer;
static client *clients;
static int nconns, naccepted, nconnected, nclosed, nsrvclosed, stopping;
static uint64_t quota = UINT64_MAX;
static uint64_t pings, pongs, pongs_at_stop, echoed;
static uint64_t t_start, t_stop;
static double duration;

static void echo_read(struct bufferevent *bev, void *arg) {
  (void)arg;
  struct evbuffer *in = bufferevent_get_input(bev);
  echoed += evbuffer_get_length(in);
  BENCH_OK(bufferevent_write_buffer(bev, in)); /* moves the bytes, no copy */
}

static void echo_event(struct bufferevent *bev, short what, void *arg) {
  (void)arg;
  if (what & BEV_EVENT_ERROR)
    bench_fail("server: %s", strerror(errno));
  if (what & BEV_EVENT_EOF) {
    bufferevent_free(bev);
    nsrvclosed++;
  }
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd,
                      struct sockaddr *sa, int len, void *arg) {
  (void)l, (void)sa, (void)len, (void)arg;
  naccepted++;
  bench_nodelay(fd);
  struct bufferevent *bev =
      bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
  BENCH_CHECK(bev);
  bufferevent_setcb(bev, echo_read, NULL, echo_event, NULL);
  BENCH_OK(bufferevent_enable(bev, EV_READ));
}

static void send_ping(client *c) {
  pings++;
  c->sent += PING_LEN;
  BENCH_OK(bufferevent_write(c->bev, PING, PING_LEN));
}

static void close_client(client *c) {
  bufferevent_free(c->bev);
  c->bev = NULL;
  if (++nclosed == nconns)
    evconnlistener_free(listener);
}

static void client_read(struct bufferevent *bev, void *arg) {
  client *c = arg;
  char buf[1024];
  size_t n;
  while ((n = (size_t)bufferevent_read(bev, buf, sizeof buf)) > 0) {
    for (size_t i = 0; i < n; i++)
      if (buf[i] != PING[(c->recvd + i) % PING_LEN])
        bench_fail("pong corrupted");
    c->recvd += n;
  }
  if (c->recvd > c->sent)
    bench_fail("more pong than ping");
  if (c->recvd < c->sent)
    return;
  pongs++;
  if (!stopping && pings < quota)
    send_ping(c);
  else
    close_client(c);
}

static void on_stop(evutil_socket_t fd, short what, void *arg) {
  (void)fd, (void)what, (void)arg;
  stopping = 1;
  t_stop = bench_ns();
  pongs_at_stop = pongs;
}

static void client_event(struct bufferevent *bev, short what, void *arg) {
  (void)arg;
  if (!(what & BEV_EVENT_CONNECTED))
    bench_fail("client event %#x: %s", what, strerror(errno));
  bench_nodelay(bufferevent_getfd(bev));
  if (++nconnected < nconns)
    return;
  t_start = bench_ns();
  if (quota == UINT64_MAX) {
    struct timeval tv = {(time_t)duration,
                         (suseconds_t)((duration - (time_t)duration) * 1e6)};
    stop_timer = evtimer_new(base, on_stop, NULL);
    BENCH_OK(evtimer_add(stop_timer, &tv));
  }
  for (int i = 0; i < nconns; i++)
    if (pings < quota)
      send_ping(&clients[i]);
}

int main(int argc, char **argv) {
  char name[64];
  nconns = (int)bench_arg(argc, argv, "conns", 1);
  duration = bench_arg(argc, argv, "duration", 0.5);
  double rt = bench_arg(argc, argv, "rt", 0);
  if (rt > 0)
    quota = (uint64_t)rt;
  snprintf(name, sizeof name, "pingpong-%d", nconns);
  bench_nofile(2 * (unsigned long)nconns + 64);
  base = event_base_new();
  BENCH_CHECK(base);
  clients = calloc((size_t)nconns, sizeof *clients);
  BENCH_CHECK(clients);

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
    bufferevent_setcb(c->bev, client_read, NULL, client_event, c);
    BENCH_OK(bufferevent_enable(c->bev, EV_READ));
    BENCH_OK(bufferevent_socket_connect(c->bev, (struct sockaddr *)&addr,
                                        sizeof addr));
  }
  BENCH_OK(event_base_dispatch(base));
  uint64_t t_end = bench_ns();

  BENCH_CHECK(nclosed == nconns && naccepted == nconns && nsrvclosed == nconns);
  BENCH_CHECK(pongs == pings && pings > 0);
  uint64_t sent = 0;
  for (int i = 0; i < nconns; i++) {
    BENCH_CHECK(clients[i].recvd == clients[i].sent);
    sent += clients[i].sent;
  }
  BENCH_CHECK(echoed == sent);
  if (stop_timer)
    event_free(stop_timer);
  event_base_free(base);
  double rate = quota == UINT64_MAX
                    ? (double)pongs_at_stop / ((double)(t_stop - t_start) / 1e9)
                    : (double)pongs / ((double)(t_end - t_start) / 1e9);
  bench_result(name, "libevent", rate, "rt/s");
  free(clients);
  return 0;
}
