"""The api service: the legacy CitizenWatt HTTP API, auth, settings, and the web page."""
