/* alloc.c: linked into every test program, which is linked with --wrap for
 * malloc, calloc, realloc, strdup and free: the library's allocations pass
 * here, so a test can make them fail and measure the heap it holds. */
#include <malloc.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>

_Atomic int soon_test_realloc_failures;
_Atomic long soon_test_alloc_fail_nth;
_Atomic long soon_test_alloc_count;
_Atomic long soon_test_heap_live;
_Atomic long soon_test_heap_peak;

void *__real_malloc(size_t n);
void *__real_calloc(size_t k, size_t n);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t k, size_t n);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
void __wrap_free(void *p);

/* Take one from *counter if it is positive: whether it was. */
static int take(_Atomic int *counter) {
  int left = atomic_load_explicit(counter, memory_order_relaxed);
  while (left > 0)
    if (atomic_compare_exchange_weak(counter, &left, left - 1))
      return 1;
  return 0;
}

/* Whether this allocation is the one soon_test_alloc_fail_nth counts down
 * to (1: this one). Each allocation is counted either way. */
static int fail_now(void) {
  atomic_fetch_add_explicit(&soon_test_alloc_count, 1, memory_order_relaxed);
  long left =
      atomic_load_explicit(&soon_test_alloc_fail_nth, memory_order_relaxed);
  while (left > 0)
    if (atomic_compare_exchange_weak(&soon_test_alloc_fail_nth, &left,
                                     left - 1))
      return left == 1;
  return 0;
}

static void account(void *p, long sign) {
  if (!p)
    return;
  long n = sign * (long)malloc_usable_size(p);
  long live = atomic_fetch_add(&soon_test_heap_live, n) + n;
  long peak = atomic_load(&soon_test_heap_peak);
  while (live > peak &&
         !atomic_compare_exchange_weak(&soon_test_heap_peak, &peak, live))
    ;
}

void *__wrap_malloc(size_t n) {
  if (fail_now())
    return NULL;
  void *p = __real_malloc(n);
  account(p, 1);
  return p;
}

void *__wrap_calloc(size_t k, size_t n) {
  if (fail_now())
    return NULL;
  void *p = __real_calloc(k, n);
  account(p, 1);
  return p;
}

void *__wrap_realloc(void *p, size_t n) {
  if (take(&soon_test_realloc_failures) || fail_now())
    return NULL;
  long old = p ? (long)malloc_usable_size(p) : 0;
  void *q = __real_realloc(p, n);
  if (q) {
    atomic_fetch_sub(&soon_test_heap_live, old);
    account(q, 1);
  }
  return q;
}

char *__wrap_strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = __wrap_malloc(n);
  return p ? memcpy(p, s, n) : NULL;
}

void __wrap_free(void *p) {
  account(p, -1);
  __real_free(p);
}
