"""Project files that CI and production rely on."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_docker_compose_parses_and_references_files_that_exist():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())

    assert {"postgres", "redis", "migrate", "api-1", "api-2", "proxy", "worker"} <= set(compose["services"])
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            if volume.startswith("./"):
                assert (ROOT / volume.split(":")[0]).is_file(), (name, volume)
        build = service.get("build")
        if build:
            context = ROOT / build.get("context", ".")
            assert context.is_dir(), name
            assert (context / build.get("dockerfile", "Dockerfile")).is_file(), name
    dockerfile = (ROOT / "Dockerfile").read_text()
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source


def test_ci_runs_the_readme_test_command_on_postgresql_too():
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()

    assert "make test" in ci and "TEST_DATABASE_URL" in ci
    assert "make run" in readme and "make test" in readme
