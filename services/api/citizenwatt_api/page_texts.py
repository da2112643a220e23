"""The words of the server-rendered /login and /install pages, in English or French.

The language is the one picked on the web page (i18n.js keeps it in the ``cw_lang`` cookie beside
localStorage, so that these pages see it too), else the browser's first language we speak
(Accept-Language), else English.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import Request

from .errors import ErrorCode

LANGUAGE_COOKIE = "cw_lang"
LANGUAGES = ("en", "fr")

_TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "login.title": "Log in",
        "login.button": "Log in",
        "install.title": "Welcome: create the administrator",
        "install.button": "Create",
        "field.login": "Login",
        "field.password": "Password",
        "wait.s": "{n} s",
        "wait.min": "{n} min",
        ErrorCode.WRONG_CREDENTIALS: "Wrong login or password.",
        ErrorCode.TOO_MANY_LOGINS: "Too many failed logins: try again in {wait}.",
        ErrorCode.LOGIN_AND_PASSWORD_NEEDED: "A login and a password of at least {min_length} characters, please.",
        ErrorCode.ALREADY_INSTALLED: "Already installed: log in instead.",
    },
    "fr": {
        "login.title": "Connexion",
        "login.button": "Se connecter",
        "install.title": "Bienvenue : créez l'administrateur",
        "install.button": "Créer",
        "field.login": "Identifiant",
        "field.password": "Mot de passe",
        "wait.s": "{n} s",
        "wait.min": "{n} min",
        ErrorCode.WRONG_CREDENTIALS: "Identifiant ou mot de passe incorrect.",
        ErrorCode.TOO_MANY_LOGINS: "Trop d'échecs de connexion : réessayez dans {wait}.",
        ErrorCode.LOGIN_AND_PASSWORD_NEEDED: (
            "Il faut un identifiant et un mot de passe d'au moins {min_length} caractères."
        ),
        ErrorCode.ALREADY_INSTALLED: "Déjà installé : connectez-vous.",
    },
}


def page_language(request: Request) -> str:
    """The cookie's language if it is one of ours, else the first of Accept-Language we speak."""
    chosen = request.cookies.get(LANGUAGE_COOKIE, "")
    if chosen in LANGUAGES:
        return chosen
    ranked: list[tuple[float, int, str]] = []
    for order, item in enumerate(request.headers.get("accept-language", "").split(",")):
        tag, _, weight = item.strip().partition(";q=")
        try:
            quality = float(weight) if weight else 1.0
        except ValueError:
            continue
        ranked.append((-quality, order, tag.strip().lower()[:2]))
    for _, _, language in sorted(ranked):
        if language in LANGUAGES:
            return language
    return "en"


def text(language: str, key: str, **values: Any) -> str:
    return _TEXTS[language][key].format(**values)


def wait_text(language: str, seconds: int) -> str:
    """A wait as people say it: seconds under a minute, else whole minutes rounded up."""
    if seconds < 60:
        return text(language, "wait.s", n=seconds)
    return text(language, "wait.min", n=math.ceil(seconds / 60))


def error_text(language: str, code: str, english: str, params: dict[str, Any]) -> str:
    """The refusal in the page's language; a code these pages have no words for keeps its English."""
    if code not in _TEXTS[language]:
        return english
    values = dict(params)
    if "retry_after" in values:
        values["wait"] = wait_text(language, int(values["retry_after"]))
    return text(language, code, **values)
