/* test_config.c — every rule of the configuration (DESIGN §1), and that each
 * refusal names the bad value. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "longnet.h"

static lnet_config *cfg;

static void setup(void) { ck_assert_int_eq(lnet_config_create(&cfg), LNET_OK); }
static void teardown(void) { lnet_config_free(cfg); }

#define ck_assert_error(expr, status, text)                                    \
    do {                                                                       \
        ck_assert_int_eq((expr), (status));                                    \
        ck_assert_msg(strstr(lnet_last_error(), (text)) != NULL,               \
                      "message '%s' does not contain '%s'", lnet_last_error(), \
                      (text));                                                 \
    } while (0)

START_TEST(levels_parse_and_read_back)
{
    ck_assert_int_eq(lnet_config_parse_levels(cfg, "2048,4096, 8192", "1,2,4"), LNET_OK);
    ck_assert_int_eq(lnet_config_levels(cfg), 3);
    ck_assert_int_eq(lnet_config_segment(cfg, 2), 8192);
    ck_assert_int_eq(lnet_config_dilation(cfg, 1), 2);
    ck_assert_int_eq(lnet_config_validate(cfg, 64), LNET_OK);
    ck_assert_int_eq(lnet_config_segment(cfg, 3), 0);
}
END_TEST

START_TEST(add_level_rules)
{
    ck_assert_error(lnet_config_add_level(cfg, 0, 1), LNET_ERR_INVALID, "segment length 0");
    ck_assert_error(lnet_config_add_level(cfg, -5, 1), LNET_ERR_INVALID, "-5");
    ck_assert_error(lnet_config_add_level(cfg, 8, 0), LNET_ERR_INVALID, "dilation 0");
    ck_assert_error(lnet_config_add_level(cfg, 8, 9), LNET_ERR_INVALID, "dilation 9");
    ck_assert_int_eq(lnet_config_levels(cfg), 0);
    ck_assert_int_eq(lnet_config_add_level(cfg, 8, 8), LNET_OK); /* r == w is allowed */
    for (int i = 1; i < LNET_MAX_LEVELS; i++)
        ck_assert_int_eq(lnet_config_add_level(cfg, 4, 1), LNET_OK);
    ck_assert_error(lnet_config_add_level(cfg, 4, 1), LNET_ERR_INVALID, "too many levels");
}
END_TEST

START_TEST(parse_refusals_name_the_value)
{
    ck_assert_error(lnet_config_parse_levels(cfg, "16,32", "1,0"), LNET_ERR_INVALID, "dilation 0");
    ck_assert_error(lnet_config_parse_levels(cfg, "0", "1"), LNET_ERR_INVALID, "segment length 0");
    ck_assert_error(lnet_config_parse_levels(cfg, "16,32", "1"), LNET_ERR_INVALID, "2 segment lengths");
    ck_assert_error(lnet_config_parse_levels(cfg, "16,,32", "1,2,4"), LNET_ERR_INVALID, "entry 2 is empty");
    ck_assert_error(lnet_config_parse_levels(cfg, "", "1"), LNET_ERR_INVALID, "entry 1 is empty");
    ck_assert_error(lnet_config_parse_levels(cfg, "16,", "1,1"), LNET_ERR_INVALID, "entry 2 is empty");
    ck_assert_error(lnet_config_parse_levels(cfg, "16,abc", "1,2"), LNET_ERR_INVALID, "'abc'");
    ck_assert_error(lnet_config_parse_levels(cfg, "16,3x", "1,2"), LNET_ERR_INVALID, "'3x'");
    ck_assert_error(lnet_config_parse_levels(cfg, "16", "1.5"), LNET_ERR_INVALID, "'1.5'");
    ck_assert_error(lnet_config_parse_levels(cfg, "99999999999999999999", "1"), LNET_ERR_INVALID,
                    "out of range");
    ck_assert_error(lnet_config_parse_levels(cfg, "-16", "1"), LNET_ERR_INVALID, "-16");
    ck_assert_error(lnet_config_parse_levels(cfg, "16", "32"), LNET_ERR_INVALID, "dilation 32");
    ck_assert_error(lnet_config_parse_levels(cfg, NULL, "1"), LNET_ERR_INVALID, "segment list");
    ck_assert_int_eq(lnet_config_levels(cfg), 0); /* failures change nothing */

    ck_assert_int_eq(lnet_config_parse_levels(cfg, "16", "1"), LNET_OK);
    ck_assert_int_ne(lnet_config_parse_levels(cfg, "16,32", "1,x"), LNET_OK);
    ck_assert_int_eq(lnet_config_levels(cfg), 1);
    ck_assert_int_eq(lnet_config_segment(cfg, 0), 16);
}
END_TEST

START_TEST(validate_rules)
{
    ck_assert_error(lnet_config_validate(cfg, 64), LNET_ERR_INVALID, "no levels");
    ck_assert_int_eq(lnet_config_parse_levels(cfg, "16,32", "2,4"), LNET_OK);
    ck_assert_error(lnet_config_validate(cfg, 64), LNET_ERR_INVALID, "no level has dilation 1");
    ck_assert_int_eq(lnet_config_parse_levels(cfg, "16,32", "2,1"), LNET_OK);
    ck_assert_int_eq(lnet_config_validate(cfg, 64), LNET_OK);
    ck_assert_error(lnet_config_validate(cfg, -3), LNET_ERR_INVALID, "-3");
    ck_assert_error(lnet_config_validate(NULL, 64), LNET_ERR_INVALID, "NULL");
}
END_TEST

START_TEST(scale_causal_offsets)
{
    ck_assert_int_eq(lnet_config_set_scale(cfg, 0.125), LNET_OK);
    ck_assert(lnet_config_scale(cfg) == 0.125);
    ck_assert_int_eq(lnet_config_set_scale(cfg, 0), LNET_OK);
    ck_assert(lnet_config_scale(cfg) == 0);
    ck_assert_error(lnet_config_set_scale(cfg, -1), LNET_ERR_INVALID, "scale -1");
    ck_assert_error(lnet_config_set_scale(cfg, NAN), LNET_ERR_INVALID, "scale nan");
    ck_assert_error(lnet_config_set_scale(cfg, INFINITY), LNET_ERR_INVALID, "scale inf");
    ck_assert_error(lnet_config_set_scale(cfg, 1e300), LNET_ERR_INVALID, "float32");
    ck_assert_error(lnet_config_set_scale(cfg, 1e-300), LNET_ERR_INVALID, "float32");

    ck_assert_int_eq(lnet_config_set_causal(cfg, 1), LNET_OK);
    ck_assert_int_eq(lnet_config_causal(cfg), 1);
    ck_assert_error(lnet_config_set_causal(cfg, 2), LNET_ERR_INVALID, "not 2");

    lnet_offsets m;
    ck_assert_int_eq(lnet_offsets_parse("grouped", &m), LNET_OK);
    ck_assert_int_eq(m, LNET_OFFSETS_GROUPED);
    ck_assert_int_eq(lnet_offsets_parse("interleaved", &m), LNET_OK);
    ck_assert_int_eq(m, LNET_OFFSETS_INTERLEAVED);
    ck_assert_error(lnet_offsets_parse("striped", &m), LNET_ERR_INVALID, "'striped'");
    ck_assert_int_eq(lnet_config_set_offsets(cfg, LNET_OFFSETS_GROUPED), LNET_OK);
    ck_assert_int_eq(lnet_config_offsets(cfg), LNET_OFFSETS_GROUPED);
    ck_assert_error(lnet_config_set_offsets(cfg, (lnet_offsets)7), LNET_ERR_INVALID, "mode 7");
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("rules");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, levels_parse_and_read_back);
    tcase_add_test(tc, add_level_rules);
    tcase_add_test(tc, parse_refusals_name_the_value);
    tcase_add_test(tc, validate_rules);
    tcase_add_test(tc, scale_causal_offsets);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
