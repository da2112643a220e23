"""Collector for a TI INA219 DC current/voltage/power monitor on the Pi's I²C bus."""
