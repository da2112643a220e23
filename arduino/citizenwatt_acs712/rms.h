/*
 * True-RMS arithmetic for the CitizenWatt ACS712 sketch, in plain C so that the host can test it.
 *
 * Samples are raw ADC counts (0..1023). The RMS is taken about a zero level: either a fixed
 * calibration constant or the mean of the samples themselves. Over whole mains cycles the mean of
 * a clean AC current is the sensor's zero, so the second choice also follows its slow drift.
 */
#ifndef CITIZENWATT_RMS_H
#define CITIZENWATT_RMS_H

#include <math.h>
#include <stdint.h>

typedef struct {
    float sum;       /* sum of samples */
    float sum_sq;    /* sum of squared samples */
    uint32_t count;
} RmsAccumulator;

static inline void rms_reset(RmsAccumulator *acc) {
    acc->sum = 0.0f;
    acc->sum_sq = 0.0f;
    acc->count = 0;
}

static inline void rms_add(RmsAccumulator *acc, int16_t sample) {
    float x = (float)sample;
    acc->sum += x;
    acc->sum_sq += x * x;
    acc->count++;
}

static inline float rms_mean(const RmsAccumulator *acc) {
    return acc->count ? acc->sum / (float)acc->count : 0.0f;
}

/* RMS of (sample - zero): sqrt(E[x^2] - 2 zero E[x] + zero^2), clamped at 0 against rounding. */
static inline float rms_about(const RmsAccumulator *acc, float zero) {
    if (acc->count == 0) {
        return 0.0f;
    }
    float n = (float)acc->count;
    float mean_sq = acc->sum_sq / n - 2.0f * zero * (acc->sum / n) + zero * zero;
    return mean_sq > 0.0f ? sqrtf(mean_sq) : 0.0f;
}

/* ADC counts -> amperes: counts * (reference volts / 1024) / (volts per ampere of the part). */
static inline float amps_from_counts(float counts, float vref, float volts_per_amp) {
    return counts * (vref / 1024.0f) / volts_per_amp;
}

/* XOR of every byte of a NUL-terminated string: the line checksum after '*'. */
static inline uint8_t xor_checksum(const char *text) {
    uint8_t value = 0;
    while (*text) {
        value ^= (uint8_t)*text++;
    }
    return value;
}

#endif
