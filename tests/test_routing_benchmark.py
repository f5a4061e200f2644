from __future__ import annotations

from gateway.routing import Router, RoutingSettings
from gateway.routing.benchmark import measure, synthetic_catalog, synthetic_prompts


def test_synthetic_catalog_has_the_requested_size_and_routes() -> None:
    catalog = synthetic_catalog(50)
    assert len(catalog.tools) == 50
    assert len(catalog.servers) == 5
    assert catalog.fingerprint() == synthetic_catalog(50).fingerprint()
    prompts = synthetic_prompts(10)
    assert len(set(prompts)) == 10
    result = measure(Router(catalog, RoutingSettings(semantic=False)), prompts)
    assert set(result) == {"p50_ms", "p99_ms", "cpu_p50_ms", "cpu_p99_ms"}
    assert 0 <= result["p50_ms"] <= result["p99_ms"]
