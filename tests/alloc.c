/* alloc.c: linked into every test program, which is linked with
 * -Wl,--wrap=realloc: the library's realloc calls pass here, so a test can
 * make the next ones fail and check the -ENOMEM paths (helpers.h). */
#include <stdatomic.h>
#include <stddef.h>

_Atomic int soon_test_realloc_failures;

void *__real_realloc(void *p, size_t n);
void *__wrap_realloc(void *p, size_t n);

void *__wrap_realloc(void *p, size_t n) {
  int left =
      atomic_load_explicit(&soon_test_realloc_failures, memory_order_relaxed);
  while (left > 0)
    if (atomic_compare_exchange_weak(&soon_test_realloc_failures, &left,
                                     left - 1))
      return NULL;
  return __real_realloc(p, n);
}
