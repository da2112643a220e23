/*
 * CitizenWatt: true-RMS current from an ACS712 on A0, one checksummed line per second on USB serial.
 *
 * Line: "CW1 irms=<A> vrms=<V> p=<W> n=<samples>*<XX>\r\n", XX = XOR of the bytes before '*'.
 * The collector (services/collector-acs712) refuses a line whose checksum does not match.
 */
#include "rms.h"

/* ---- settings: edit these for your part and your mains ---------------------------------- */
const float VOLTS_PER_AMP = 0.100;   /* ACS712 sensitivity: 0.185 (5 A), 0.100 (20 A), 0.066 (30 A) */
const float NOMINAL_VOLTS = 230.0;   /* mains voltage, to turn current into power */
const float MAINS_HZ = 50.0;         /* 50 Hz in Europe, 60 Hz in the Americas */
const uint8_t CYCLES = 20;           /* whole mains cycles per measurement (20 at 50 Hz = 400 ms) */
const float ADC_REFERENCE = 5.0;     /* volts at the top of the ADC range (Uno: 5 V) */
const float ZERO_COUNTS = -1.0;      /* fixed zero in ADC counts; negative: use the measured mean */
const float NOISE_AMPS = 0.05;       /* below this, report 0 A: the ACS712's noise floor */
const uint8_t SENSOR_PIN = A0;
const unsigned long LINE_PERIOD_MS = 1000;
/* ------------------------------------------------------------------------------------------ */

static RmsAccumulator acc;

void setup() {
    Serial.begin(9600);
    analogReference(DEFAULT);
}

static void measure_whole_cycles() {
    const unsigned long window_us = (unsigned long)(CYCLES * 1000000.0 / MAINS_HZ);
    rms_reset(&acc);
    const unsigned long start = micros();
    while (micros() - start < window_us) {
        rms_add(&acc, (int16_t)analogRead(SENSOR_PIN));
    }
}

static void print_line(float amps, unsigned long samples) {
    char irms[12], vrms[12], watts[14], line[80];
    dtostrf(amps, 1, 3, irms);
    dtostrf(NOMINAL_VOLTS, 1, 1, vrms);
    dtostrf(amps * NOMINAL_VOLTS, 1, 1, watts);
    snprintf(line, sizeof line, "CW1 irms=%s vrms=%s p=%s n=%lu", irms, vrms, watts, samples);
    char checksum[4];
    snprintf(checksum, sizeof checksum, "%02X", xor_checksum(line));
    Serial.print(line);
    Serial.print('*');
    Serial.print(checksum);
    Serial.print("\r\n");
}

void loop() {
    const unsigned long started = millis();
    measure_whole_cycles();
    const float zero = ZERO_COUNTS >= 0 ? ZERO_COUNTS : rms_mean(&acc);
    float amps = amps_from_counts(rms_about(&acc, zero), ADC_REFERENCE, VOLTS_PER_AMP);
    if (amps < NOISE_AMPS) {
        amps = 0.0;
    }
    print_line(amps, acc.count);
    while (millis() - started < LINE_PERIOD_MS) {
        /* wait for the next second: one line per second, like the original sketches */
    }
}
