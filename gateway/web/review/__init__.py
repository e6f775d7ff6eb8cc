"""The review web page for the legal team (CONTRACT §4.8), mounted at /review/.

Server-rendered HTML (jinja2, autoescaped), no JavaScript: reviewers from
``[[reviewers]]`` sign in with a password (scrypt, or argon2 when argon2-cffi is
installed), then filter and export the disclosure log, open a disclosure with its
inclusion proof, see the log's integrity, justify emergency disclosures and approve
lawful requests.

Wiring (the composition root): ``handlers.add_review_routes(app, reviewers=…,
session_key=…, partners=…, clock=…)`` before the app starts, and
``app[backend.REVIEW_BACKEND] = <ReviewBackend>`` once the store is open; the store itself
is found under ``gateway.web.keys.STORE``. Names are imported from the module that
defines them (``backend``: the port and its records; ``handlers``: the routes).
"""
