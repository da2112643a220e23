# ruff: noqa: S105 (codes that name passwords and tokens, not secrets)
"""Every error code the api can send (the ``code`` beside the English ``error`` text).

The page translates an error by its code (services/ui/js/i18n.js, keys ``error.<code>``), filling
the message's blanks from ``params``; a test checks that each code here has its text there in
every language, and that no code is written anywhere in the api without being listed here.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    # What a status means when the raiser names nothing more precise (auth.ApiError's defaults).
    ERROR = "error"
    INVALID_PARAMETERS = "invalid_parameters"  # params: field (where, when known)
    AUTHENTICATION_REQUIRED = "authentication_required"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    CONFLICT = "conflict"
    TOO_LARGE = "too_large"
    TOO_MANY_REQUESTS = "too_many_requests"
    UNAVAILABLE = "unavailable"
    DATABASE_UNAVAILABLE = "database_unavailable"
    SERVER_BUSY = "server_busy"  # heavy requests all taken (limits.py); with Retry-After
    INVALID_TEXT = "invalid_text"

    # Logging in and the account.
    TOO_MANY_LOGINS = "too_many_logins"  # params: retry_after (seconds)
    WRONG_CREDENTIALS = "wrong_credentials"
    WRONG_CURRENT_PASSWORD = "wrong_current_password"
    PASSWORD_TOO_SHORT = "password_too_short"  # params: min_length
    LOGIN_AND_PASSWORD_NEEDED = "login_and_password_needed"  # params: min_length
    ALREADY_INSTALLED = "already_installed"
    CROSS_SITE_REFUSED = "cross_site_refused"
    UNKNOWN_TOKEN = "unknown_token"
    ADMIN_ONLY = "admin_only"
    INVALID_TOKEN_NAME = "invalid_token_name"
    NO_ACTIVE_TOKEN = "no_active_token"  # params: token
    BODY_NOT_JSON = "body_not_json"

    # Asking for readings, energy and costs.
    INVALID_SENSOR = "invalid_sensor"
    UNKNOWN_SENSOR = "unknown_sensor"  # params: sensor
    UNKNOWN_TIME_ZONE = "unknown_time_zone"  # params: zone
    OUTSIDE_CALENDAR = "outside_calendar"
    END_BEFORE_START = "end_before_start"
    RANGE_TOO_LONG = "range_too_long"  # params: max_days
    BUCKET_NOT_ALLOWED = "bucket_not_allowed"  # params: period, bucket, allowed
    INVALID_COMPARISON = "invalid_comparison"  # params: value
    INVALID_SINCE = "invalid_since"
    TOO_MANY_VALUES = "too_many_values"  # params: limit
    TOO_MANY_BUCKETS = "too_many_buckets"  # params: limit

    # Settings and tariffs.
    UNKNOWN_PROVIDER = "unknown_provider"  # params: provider
    INVALID_PROVIDER = "invalid_provider"
    INVALID_NIGHT_WINDOW = "invalid_night_window"  # params: detail (English)
    INVALID_RADIO_CONFIG = "invalid_radio_config"  # params: detail (English)
    INVALID_TARIFF_VERSION = "invalid_tariff_version"  # params: valid_from, detail (English)
    UNKNOWN_TARIFF = "unknown_tariff"  # params: tariff
    TARIFF_NAME_TAKEN = "tariff_name_taken"  # params: name
    VERSION_WITHOUT_DATE = "version_without_date"
    DUPLICATE_VERSION_DATE = "duplicate_version_date"
    VERSION_DATE_MISMATCH = "version_date_mismatch"
    UNKNOWN_VERSION = "unknown_version"  # params: tariff, valid_from
    LAST_VERSION = "last_version"
    TEMPO_RANGE = "tempo_range"  # params: max_days
    INVALID_COLOUR = "invalid_colour"  # params: colours

    # Readings kept aside for an impossible time (quarantine.py).
    UNKNOWN_QUARANTINED_READING = "unknown_quarantined_reading"  # params: id
    QUARANTINE_CONFLICT = "quarantine_conflict"  # params: id
    QUARANTINE_IN_FUTURE = "quarantine_in_future"  # params: id
