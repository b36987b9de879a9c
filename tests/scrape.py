"""Reading `GET /metrics` in tests: the exposition text parsed into samples."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Scrape:
    text: str
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float]

    def value(self, name: str, **labels: str) -> float | None:
        """One sample's value, or None when the series is absent."""
        return self.samples.get((name, frozenset(labels.items())))

    def get(self, name: str, **labels: str) -> float:
        """One sample's value; fails the test when the series is absent."""
        value = self.value(name, **labels)
        assert value is not None, f"no sample {name}{labels} in:\n{self.text}"
        return value

    def total(self, name: str) -> float:
        """The sum over every label combination of one sample name (0 when absent)."""
        return sum(v for (n, _), v in self.samples.items() if n == name)

    def names(self) -> set[str]:
        return {name for name, _ in self.samples}


def parse(text: str) -> Scrape:
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    return Scrape(text, samples)


async def scrape(base_url: str) -> Scrape:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{base_url}/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)
