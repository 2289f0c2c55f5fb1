"""The country page against the JSON lookup it is built on, from one server.

The issue's bar: a country page costs no more than twice the JSON lookup, so the
page's requests/s must be at least half the lookup's. Both answer from the
version-checked document cache (the page's HTML is cached like the JSON).
"""

from harness import BenchError, Target, gunicorn_server, http_get, measure_interleaved, tail

PAGE_PATH = "/countries/VN"
JSON_PATH = "/v1/countries/VN"
PAGE_TARGET_RATIO = 0.50


def bench_pages(ctx, prepare_database, result_class, ratio):
    workdir = ctx.workdir / "pages"
    workdir.mkdir()
    database_url = prepare_database(workdir)
    with gunicorn_server(
        "pages",
        "service.wsgi:app",
        ctx.gunicorn,
        workdir,
        env={"DATABASE_URL": database_url},
        ready_path="/healthz",
    ) as server:
        for path, kind in ((PAGE_PATH, "text/html"), (JSON_PATH, "application/json")):
            status, headers, body = http_get(server.url(path))
            if status != 200 or not headers.get("Content-Type", "").startswith(kind):
                raise BenchError(
                    f"GET {path} answered {status} {headers.get('Content-Type')}:\n{body[:300]!r}"
                )
            print(f"  {path}: {len(body)} bytes of {kind}")
        stats = measure_interleaved(
            [Target("page", server.url(PAGE_PATH), server), Target("json", server.url(JSON_PATH), server)],
            ctx.load,
        )
        for entry in stats:
            if entry.errors:
                print(f"  {entry.target.name} had {entry.errors} errors; the server log ends:")
                print(tail(server.log_path))
    return result_class(
        name="pages",
        title=f"GET {PAGE_PATH} (HTML page) vs. GET {JSON_PATH} (JSON), same server",
        stats=stats,
        ratios=[ratio(*stats, target=PAGE_TARGET_RATIO)],
    )
