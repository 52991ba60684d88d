"""One way to write a moment on every page, the admin's included: ISO-like date, 24-hour time, and the zone
(TIME_ZONE, UTC by default), instead of Django's English "Dec. 7, 2026, 1:26 a.m." beside our "2026-12-07 01:26"."""

DATETIME_FORMAT = "Y-m-d H:i T"
SHORT_DATETIME_FORMAT = "Y-m-d H:i T"
DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i:s"
