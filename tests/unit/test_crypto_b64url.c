/* Tests for crypto/b64url.c: RFC 4648 vectors in the URL alphabet, no padding on output,
 * optional padding on input, strict alphabet and canonical trailing bits. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <gnutls/crypto.h>

#include "crypto/b64url.h"

static void assert_encodes(const void *data, size_t len, const char *want)
{
    char *got = b64url_encode(data, len);

    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void assert_decodes(const char *s, const void *want, size_t want_len)
{
    uint8_t *out = (uint8_t *)"sentinel";
    size_t len = 12345;

    assert_int_equal(b64url_decode(s, &out, &len), 0);
    assert_non_null(out);
    assert_int_equal(len, want_len);
    if (want_len)
        assert_memory_equal(out, want, want_len);
    free(out);
}

static void assert_refused(const char *s)
{
    uint8_t *out = (uint8_t *)"sentinel";
    size_t len = 12345;

    assert_int_equal(b64url_decode(s, &out, &len), -EINVAL);
    assert_null(out);
    assert_int_equal(len, 0);
}

/* RFC 4648 §10 test vectors, padding removed (RFC 7515 §2). */
static const struct {
    const char *plain;
    const char *enc;
} rfc4648[] = {
    {"", ""},           {"f", "Zg"},          {"fo", "Zm8"},          {"foo", "Zm9v"},
    {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"},
};

static void test_rfc4648_vectors(void **state)
{
    for (size_t i = 0; i < sizeof(rfc4648) / sizeof(rfc4648[0]); i++) {
        assert_encodes(rfc4648[i].plain, strlen(rfc4648[i].plain), rfc4648[i].enc);
        assert_decodes(rfc4648[i].enc, rfc4648[i].plain, strlen(rfc4648[i].plain));
    }
}

/* The two characters that differ from standard base64 ('+' and '/' become '-' and '_'). */
static void test_url_alphabet(void **state)
{
    static const uint8_t fbff[] = {0xfb, 0xff};
    /* RFC 7515 appendix C: the example octets and their base64url form. */
    static const uint8_t rfc7515[] = {3, 236, 255, 224, 193};

    assert_encodes(fbff, sizeof(fbff), "-_8");
    assert_decodes("-_8", fbff, sizeof(fbff));
    assert_encodes(rfc7515, sizeof(rfc7515), "A-z_4ME");
    assert_decodes("A-z_4ME", rfc7515, sizeof(rfc7515));
    assert_refused("+/8");
    assert_refused("A+z/4ME");
}

static void test_padding_tolerated(void **state)
{
    assert_decodes("Zg==", "f", 1);
    assert_decodes("Zm8=", "fo", 2);
    assert_decodes("Zm9v", "foo", 3);
    /* Wrong amount of padding, padding in the middle, too much padding. */
    assert_refused("Zg=");
    assert_refused("Zm8==");
    assert_refused("Zm9v=");
    assert_refused("Zg==Zg");
    assert_refused("Z===");
    assert_refused("=");
    assert_refused("==");
}

static void test_garbage_refused(void **state)
{
    uint8_t *out;
    size_t len;

    assert_int_equal(b64url_decode(NULL, &out, &len), -EINVAL);
    assert_refused("Zm9vY");   /* 4n+1 characters cannot come from any input */
    assert_refused("Zm9v Yg"); /* nettle would skip whitespace; base64url has none */
    assert_refused("Zm9v\nYg");
    assert_refused(" Zm9v");
    assert_refused("Zm9v!");
    assert_refused("Zm9v\xc3\xa9");
    /* Non-zero unused bits: "Zh" would decode to "f" but is not the canonical encoding. */
    assert_refused("Zh");
    assert_refused("Zm9");
}

static void test_roundtrip_random(void **state)
{
    uint8_t buf[300];

    assert_int_equal(gnutls_rnd(GNUTLS_RND_NONCE, buf, sizeof(buf)), 0);
    for (size_t len = 0; len <= sizeof(buf); len++) {
        char *enc = b64url_encode(buf, len);
        uint8_t *dec = NULL;
        size_t dec_len = 0;

        assert_non_null(enc);
        /* ceil(len * 4 / 3) without padding. */
        assert_int_equal(strlen(enc), (len * 4 + 2) / 3);
        assert_null(strpbrk(enc, "=+/"));
        assert_int_equal(b64url_decode(enc, &dec, &dec_len), 0);
        assert_int_equal(dec_len, len);
        if (len)
            assert_memory_equal(dec, buf, len);
        free(dec);
        free(enc);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc4648_vectors),   cmocka_unit_test(test_url_alphabet),
        cmocka_unit_test(test_padding_tolerated), cmocka_unit_test(test_garbage_refused),
        cmocka_unit_test(test_roundtrip_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
