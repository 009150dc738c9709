/* test_error.c: soon_strerror and soon_err_name, for errno values, SOON_EOF
 * and values soon does not know (which still get non-NULL strings). */
/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <soon.h>
#include <soon/http.h>
#include <string.h>

static void test_strerror_errno(void **state) {
  (void)state;
  assert_string_equal(soon_strerror(-ENOENT), "No such file or directory");
  assert_string_equal(soon_strerror(-EINVAL), "Invalid argument");
  assert_string_equal(soon_strerror(-EBUSY), "Device or resource busy");
}

static void test_err_name_errno(void **state) {
  (void)state;
  assert_string_equal(soon_err_name(-ENOENT), "ENOENT");
  assert_string_equal(soon_err_name(-EINVAL), "EINVAL");
  assert_string_equal(soon_err_name(-EEXIST), "EEXIST");
  assert_string_equal(soon_err_name(-EPERM), "EPERM");
  assert_string_equal(soon_err_name(-ENOSYS), "ENOSYS");
  assert_string_equal(soon_err_name(-EBADF), "EBADF");
  assert_string_equal(soon_err_name(-EBUSY), "EBUSY");
}

static void test_eof(void **state) {
  (void)state;
  assert_string_equal(soon_err_name(SOON_EOF), "EOF");
  const char *s = soon_strerror(SOON_EOF);
  assert_non_null(s);
  assert_true(strlen(s) > 0);
  assert_string_not_equal(s, "unknown error");
}

/* The HTTP parser's codes: each has its own name and sentence (the status
 * a server answers for each is test_http_parser's test_error_status). */
static void test_http_codes(void **state) {
  (void)state;
  assert_string_equal(soon_err_name(SOON_HTTP_EMETHOD), "HTTP_EMETHOD");
  assert_string_equal(soon_err_name(SOON_HTTP_ECHUNK_SIZE), "HTTP_ECHUNK_SIZE");
  assert_string_equal(soon_err_name(SOON_HTTP_EDONE), "HTTP_EDONE");
  assert_string_equal(soon_err_name(SOON_HTTP_EDONE - 1), "UNKNOWN");
  assert_string_equal(soon_err_name(SOON_HTTP_EMETHOD + 1), "UNKNOWN");
  for (int e = SOON_HTTP_EDONE; e <= SOON_HTTP_EMETHOD; e++) {
    assert_string_not_equal(soon_strerror(e), "unknown error");
    assert_string_not_equal(
        soon_strerror(e), soon_strerror(e == SOON_HTTP_EDONE ? e + 1 : e - 1));
  }
}

static void test_unknown(void **state) {
  (void)state;
  assert_string_equal(soon_strerror(-99999), "unknown error");
  assert_string_equal(soon_err_name(-99999), "UNKNOWN");
  /* Errors are negative: a positive value is not one of them. */
  assert_string_equal(soon_strerror(5), "unknown error");
  assert_string_equal(soon_err_name(5), "UNKNOWN");
}

/* Every value in and around the errno range gives non-NULL, non-empty text. */
static void test_never_null(void **state) {
  (void)state;
  for (int e = -5000; e <= 200; e++) {
    const char *s = soon_strerror(e), *n = soon_err_name(e);
    assert_non_null(s);
    assert_non_null(n);
    assert_true(strlen(s) > 0);
    assert_true(strlen(n) > 0);
  }
}

/* Any int is safe, the extremes too: -INT_MIN would overflow (UBSan). */
static void test_extremes(void **state) {
  (void)state;
  const int values[] = {INT_MIN, INT_MIN + 1, INT_MAX, -1, 0};
  for (size_t i = 0; i < sizeof values / sizeof *values; i++) {
    assert_non_null(soon_strerror(values[i]));
    assert_non_null(soon_err_name(values[i]));
  }
  assert_string_equal(soon_strerror(INT_MIN), "unknown error");
  assert_string_equal(soon_err_name(INT_MIN), "UNKNOWN");
  assert_string_equal(soon_err_name(INT_MIN + 1), "UNKNOWN");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_strerror_errno),
      cmocka_unit_test(test_err_name_errno),
      cmocka_unit_test(test_eof),
      cmocka_unit_test(test_http_codes),
      cmocka_unit_test(test_unknown),
      cmocka_unit_test(test_never_null),
      cmocka_unit_test(test_extremes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
