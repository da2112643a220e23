/* Host test of rms.h: a synthetic sine with a known RMS. Built and run by tests/test_arduino.py. */
#include <stdio.h>
#include <stdlib.h>
#include "rms.h"

static int failures = 0;

static void expect_near(const char *what, double got, double want, double tolerance) {
    if (fabs(got - want) > tolerance) {
        printf("FAIL %s: got %.6f, want %.6f\n", what, got, want);
        failures++;
    }
}

int main(void) {
    RmsAccumulator acc;
    rms_reset(&acc);
    /* 10 whole cycles of 100 samples: offset 512 counts, amplitude 100 counts. */
    for (int i = 0; i < 1000; i++) {
        rms_add(&acc, (int16_t)lround(512.0 + 100.0 * sin(2.0 * M_PI * i / 100.0)));
    }
    /* A sine's RMS is amplitude / sqrt(2) = 70.7107 counts; rounding to integers costs < 0.05. */
    expect_near("mean", rms_mean(&acc), 512.0, 0.01);
    expect_near("rms about the mean", rms_about(&acc, rms_mean(&acc)), 70.7107, 0.05);
    expect_near("rms about a fixed zero", rms_about(&acc, 512.0f), 70.7107, 0.05);
    /* 70.7107 counts * 5 V / 1024 = 0.345267 V; at 0.100 V/A (20 A part): 3.45267 A. */
    expect_near("amps", amps_from_counts(70.7107f, 5.0f, 0.100f), 3.45267, 0.0001);
    /* 'C' 0x43 ^ 'W' 0x57 = 0x14; ^ '1' 0x31 = 0x25; ^ ' ' 0x20 = 0x05; ^ 'a' 0x61 = 0x64. */
    if (xor_checksum("CW1 a") != 0x64) {
        printf("FAIL checksum: got %02X\n", xor_checksum("CW1 a"));
        failures++;
    }
    /* A DC level alone (no current) has no RMS about its mean. */
    rms_reset(&acc);
    for (int i = 0; i < 500; i++) {
        rms_add(&acc, 511);
    }
    expect_near("flat line", rms_about(&acc, rms_mean(&acc)), 0.0, 0.01);
    printf("%d failed\n", failures);
    return failures ? EXIT_FAILURE : EXIT_SUCCESS;
}
