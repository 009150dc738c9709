/* test_dns.c: getaddrinfo and getnameinfo on the pool: numeric and local names,
 * failures as SOON_EAI_* codes, cancellation, argument checks. No network. */
/* cmocka.h needs these first, in this order. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include <arpa/inet.h>
#include <pthread.h>
#include <soon.h>
#include <stdbool.h>
#include <stdio.h>

#include "helpers.h"

static pthread_t loop_thread;
static int in_call; /* set while soon_getaddrinfo/getnameinfo runs */

typedef struct {
  int calls;
  int status;
  char ip[INET6_ADDRSTRLEN]; /* the first address of the wanted family */
  int family;                /* wanted; AF_UNSPEC takes the first */
  int found;
  int port;
} gai_result;

static void on_gai(soon_getaddrinfo_req *req, int status,
                   struct addrinfo *res) {
  gai_result *r = req->data;
  assert_false(in_call);
  assert_true(pthread_equal(pthread_self(), loop_thread));
  assert_int_equal(req->type, SOON_GETADDRINFO);
  r->calls++;
  r->status = status;
  if (status != 0)
    assert_null(res);
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
    if (r->found || (r->family != AF_UNSPEC && ai->ai_family != r->family))
      continue;
    assert_int_equal(soon_ip_name(ai->ai_addr, r->ip, sizeof r->ip), 0);
    r->port = ai->ai_family == AF_INET
                  ? ntohs(((struct sockaddr_in *)ai->ai_addr)->sin_port)
                  : ntohs(((struct sockaddr_in6 *)ai->ai_addr)->sin6_port);
    r->found = 1;
  }
  soon_freeaddrinfo(res);
}

static int setup(void **state) {
  (void)state;
  loop_thread = pthread_self();
  in_call = 0;
  return 0;
}

/* One lookup, run to completion on a fresh loop; returns its status. */
static void lookup(const char *node, const char *service,
                   const struct addrinfo *hints, int family, gai_result *r) {
  soon_loop loop;
  soon_timer guard;
  soon_getaddrinfo_req req;
  memset(r, 0, sizeof *r);
  r->family = family;
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  req.data = r;
  in_call = 1;
  assert_int_equal(soon_getaddrinfo(&loop, &req, on_gai, node, service, hints),
                   0);
  in_call = 0;
  assert_int_equal(r->calls, 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(r->calls, 1);
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
}

static void test_localhost(void **state) {
  (void)state;
  gai_result r;
  struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_DGRAM};
  lookup("localhost", NULL, &hints, AF_INET, &r);
  assert_int_equal(r.status, 0);
  assert_true(r.found);
  assert_string_equal(r.ip, "127.0.0.1");
}

static void test_numeric(void **state) {
  (void)state;
  gai_result r;
  struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
                           .ai_socktype = SOCK_STREAM};
  lookup("127.0.0.1", "8080", &hints, AF_INET, &r);
  assert_int_equal(r.status, 0);
  assert_string_equal(r.ip, "127.0.0.1");
  assert_int_equal(r.port, 8080);
  lookup("::1", "53", &hints, AF_INET6, &r);
  assert_int_equal(r.status, 0);
  assert_string_equal(r.ip, "::1");
  assert_int_equal(r.port, 53);
}

static void test_service_only(void **state) {
  (void)state;
  gai_result r;
  struct addrinfo hints = {.ai_flags = AI_PASSIVE | AI_NUMERICSERV,
                           .ai_family = AF_INET,
                           .ai_socktype = SOCK_STREAM};
  lookup(NULL, "80", &hints, AF_INET, &r);
  assert_int_equal(r.status, 0);
  assert_string_equal(r.ip, "0.0.0.0");
  assert_int_equal(r.port, 80);
}

static bool is_eai(int status) {
  return status <= SOON_EAI_ADDRFAMILY && status >= SOON_EAI_SOCKTYPE;
}

/* RFC 6761: .invalid never resolves. Whatever the resolver says without a
 * network (no such name, try again, system error), it is an error. */
static void test_nonexistent(void **state) {
  (void)state;
  gai_result r;
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
  lookup("nonexistent.invalid", NULL, &hints, AF_UNSPEC, &r);
  assert_true(r.status < 0);
  assert_true(is_eai(r.status) || r.status > -4095);
  assert_false(r.found);
}

static void test_numerichost_rejects_name(void **state) {
  (void)state;
  gai_result r;
  struct addrinfo hints = {.ai_flags = AI_NUMERICHOST};
  lookup("localhost", NULL, &hints, AF_UNSPEC, &r);
  assert_int_equal(r.status, SOON_EAI_NONAME);
  assert_false(r.found);
}

static void test_bad_service(void **state) {
  (void)state;
  gai_result r;
  struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
  lookup("127.0.0.1", "http", &hints, AF_UNSPEC, &r);
  assert_int_equal(r.status, SOON_EAI_NONAME);
}

typedef struct {
  int calls;
  int status;
  char host[64];
  char service[32];
} gni_result;

static void on_gni(soon_getnameinfo_req *req, int status, const char *host,
                   const char *service) {
  gni_result *r = req->data;
  assert_false(in_call);
  assert_true(pthread_equal(pthread_self(), loop_thread));
  assert_int_equal(req->type, SOON_GETNAMEINFO);
  r->calls++;
  r->status = status;
  if (status == 0) {
    assert_non_null(host);
    assert_non_null(service);
    snprintf(r->host, sizeof r->host, "%s", host);
    snprintf(r->service, sizeof r->service, "%s", service);
  } else {
    assert_null(host);
    assert_null(service);
  }
}

static void test_getnameinfo(void **state) {
  (void)state;
  soon_loop loop;
  soon_timer guard;
  soon_getnameinfo_req req4, req6;
  gni_result r4 = {0}, r6 = {0};
  struct sockaddr_in a4;
  struct sockaddr_in6 a6;
  assert_int_equal(soon_ip4_addr("127.0.0.1", 80, &a4), 0);
  assert_int_equal(soon_ip6_addr("::1", 443, &a6), 0);
  loop_init_checked(&loop);
  guard_start(&loop, &guard);
  req4.data = &r4;
  req6.data = &r6;
  in_call = 1;
  assert_int_equal(soon_getnameinfo(&loop, &req4, on_gni,
                                    (struct sockaddr *)&a4,
                                    NI_NUMERICHOST | NI_NUMERICSERV),
                   0);
  assert_int_equal(soon_getnameinfo(&loop, &req6, on_gni,
                                    (struct sockaddr *)&a6,
                                    NI_NUMERICHOST | NI_NUMERICSERV),
                   0);
  in_call = 0;
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(r4.calls, 1);
  assert_int_equal(r4.status, 0);
  assert_string_equal(r4.host, "127.0.0.1");
  assert_string_equal(r4.service, "80");
  assert_int_equal(r6.calls, 1);
  assert_int_equal(r6.status, 0);
  assert_string_equal(r6.host, "::1");
  assert_string_equal(r6.service, "443");
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
}

/* ------------------------------------------------------------ cancel */

/* A gate that holds the pool's only worker until the loop thread opens it. */
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static int gate_open;

static void gate_work(soon_work_req *req) {
  (void)req;
  pthread_mutex_lock(&gate_mu);
  while (!gate_open)
    pthread_cond_wait(&gate_cond, &gate_mu);
  pthread_mutex_unlock(&gate_mu);
}

static void gate_set(int open) {
  pthread_mutex_lock(&gate_mu);
  gate_open = open;
  pthread_cond_broadcast(&gate_cond);
  pthread_mutex_unlock(&gate_mu);
}

static int gate_after_calls;
static void gate_after(soon_work_req *req, int status) {
  (void)req;
  assert_int_equal(status, 0);
  gate_after_calls++;
}

static void open_gate(soon_timer *t) {
  gate_set(1);
  assert_int_equal(soon_close((soon_handle *)t, NULL), 0);
}

static void test_cancel(void **state) {
  (void)state;
  soon_pool *pool;
  soon_pool_options po = {.size = 1};
  soon_loop loop;
  soon_timer guard, opener;
  soon_work_req gate;
  soon_getaddrinfo_req gai;
  soon_getnameinfo_req gni;
  gai_result gr = {0};
  gni_result nr = {0};
  struct sockaddr_in a4;
  assert_int_equal(soon_ip4_addr("127.0.0.1", 80, &a4), 0);
  gate_set(0);
  gate_after_calls = 0;
  assert_int_equal(soon_pool_new(&pool, &po), 0);
  soon_loop_options lo = {.pool = pool};
  memset(&loop, 0, sizeof loop);
  assert_int_equal(soon_loop_init_ex(&loop, &lo), 0);
  guard_start(&loop, &guard);
  assert_int_equal(soon_work(&loop, &gate, gate_work, gate_after), 0);
  gai.data = &gr;
  gni.data = &nr;
  assert_int_equal(
      soon_getaddrinfo(&loop, &gai, on_gai, "localhost", NULL, NULL), 0);
  assert_int_equal(soon_getnameinfo(&loop, &gni, on_gni, (struct sockaddr *)&a4,
                                    NI_NUMERICHOST),
                   0);
  /* The only worker is held by the gate (or has not even taken it yet, and
   * then takes the gate first): both lookups are still queued. */
  in_call = 1;
  assert_int_equal(soon_cancel((soon_req *)&gai), 0);
  assert_int_equal(soon_cancel((soon_req *)&gni), 0);
  assert_int_equal(soon_cancel((soon_req *)&gai), -EBUSY);
  in_call = 0;
  assert_int_equal(gr.calls, 0);
  assert_int_equal(nr.calls, 0);
  /* The gate opens from the loop thread, once the loop runs. */
  assert_int_equal(soon_timer_init(&loop, &opener), 0);
  assert_int_equal(soon_timer_start(&opener, open_gate, 0, 0), 0);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  assert_int_equal(gr.calls, 1);
  assert_int_equal(gr.status, -ECANCELED);
  assert_false(gr.found);
  assert_int_equal(nr.calls, 1);
  assert_int_equal(nr.status, -ECANCELED);
  assert_int_equal(gate_after_calls, 1);
  guard_close(&loop, &guard);
  loop_close_checked(&loop);
  assert_int_equal(soon_pool_free(pool), 0);
}

static void test_error_names(void **state) {
  (void)state;
  assert_string_equal(soon_err_name(SOON_EAI_NONAME), "EAI_NONAME");
  assert_string_equal(soon_err_name(SOON_EAI_AGAIN), "EAI_AGAIN");
  assert_string_equal(soon_err_name(SOON_EAI_SOCKTYPE), "EAI_SOCKTYPE");
  assert_string_equal(soon_strerror(SOON_EAI_NONAME), gai_strerror(EAI_NONAME));
  assert_string_equal(soon_strerror(SOON_EAI_SERVICE),
                      gai_strerror(EAI_SERVICE));
  for (int e = SOON_EAI_SOCKTYPE; e <= SOON_EAI_ADDRFAMILY; e++) {
    assert_string_not_equal(soon_err_name(e), "UNKNOWN");
    assert_string_not_equal(soon_strerror(e), "unknown error");
  }
  assert_string_equal(soon_err_name(SOON_EAI_SOCKTYPE - 1), "UNKNOWN");
}

static void never_gai(soon_getaddrinfo_req *req, int status,
                      struct addrinfo *res) {
  (void)req;
  (void)status;
  (void)res;
  fail_msg("callback of a rejected request");
}

static void never_gni(soon_getnameinfo_req *req, int status, const char *host,
                      const char *service) {
  (void)req;
  (void)status;
  (void)host;
  (void)service;
  fail_msg("callback of a rejected request");
}

static void test_invalid(void **state) {
  (void)state;
  soon_loop loop;
  soon_getaddrinfo_req gai;
  soon_getnameinfo_req gni;
  struct sockaddr_in a4;
  struct sockaddr unspec = {.sa_family = AF_UNSPEC};
  assert_int_equal(soon_ip4_addr("127.0.0.1", 80, &a4), 0);
  loop_init_checked(&loop);
  assert_int_equal(
      soon_getaddrinfo(NULL, &gai, never_gai, "localhost", NULL, NULL),
      -EINVAL);
  assert_int_equal(
      soon_getaddrinfo(&loop, NULL, never_gai, "localhost", NULL, NULL),
      -EINVAL);
  assert_int_equal(soon_getaddrinfo(&loop, &gai, NULL, "localhost", NULL, NULL),
                   -EINVAL);
  assert_int_equal(soon_getaddrinfo(&loop, &gai, never_gai, NULL, NULL, NULL),
                   -EINVAL);
  const struct sockaddr *sa = (const struct sockaddr *)&a4;
  assert_int_equal(soon_getnameinfo(NULL, &gni, never_gni, sa, 0), -EINVAL);
  assert_int_equal(soon_getnameinfo(&loop, NULL, never_gni, sa, 0), -EINVAL);
  assert_int_equal(soon_getnameinfo(&loop, &gni, NULL, sa, 0), -EINVAL);
  assert_int_equal(soon_getnameinfo(&loop, &gni, never_gni, NULL, 0), -EINVAL);
  assert_int_equal(soon_getnameinfo(&loop, &gni, never_gni, &unspec, 0),
                   -EINVAL);
  soon_freeaddrinfo(NULL);
  assert_int_equal(soon_run(&loop, SOON_RUN_DEFAULT), 0);
  loop_close_checked(&loop);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_localhost, setup),
      cmocka_unit_test_setup(test_numeric, setup),
      cmocka_unit_test_setup(test_service_only, setup),
      cmocka_unit_test_setup(test_nonexistent, setup),
      cmocka_unit_test_setup(test_numerichost_rejects_name, setup),
      cmocka_unit_test_setup(test_bad_service, setup),
      cmocka_unit_test_setup(test_getnameinfo, setup),
      cmocka_unit_test_setup(test_cancel, setup),
      cmocka_unit_test_setup(test_error_names, setup),
      cmocka_unit_test_setup(test_invalid, setup),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
