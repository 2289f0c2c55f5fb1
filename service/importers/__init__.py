"""Importers: read the regulator's own publications and turn differences into proposals.

Parsers (`ecfr`, `federal_register`) are pure: bytes in, a table or a list of
announced changes out, or `UnrecognisedFormat`. `proposals` compares what they
read with what the service answers and records proposals (a domain service
taking a session); `fetch` reads the remote APIs through one configured
`requests.Session`; `watch` ties them together for `exportctl watch`.
"""
