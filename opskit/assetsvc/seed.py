"""Fast, realistic seed data: street addresses around real US city centres, spread over K companies."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator

STREETS = (
    "Main St", "Oak Ave", "Maple Dr", "Cedar Ln", "Pine St", "Elm St", "Washington Blvd", "Lake Rd",
    "Hill St", "Park Ave", "2nd St", "3rd Ave", "Sunset Blvd", "Broadway", "Market St", "Church Rd",
    "Mill Rd", "River Rd", "Jefferson Ave", "Lincoln Way", "Highland Ave", "Forest Dr", "Spring St",
    "Martin Luther King Jr Blvd", "Pennsylvania Ave", "Industrial Pkwy", "Commerce Center Dr",
)
UNITS = ("Apt", "Suite", "Unit", "Bldg", "Dock")
# (city, state, zip prefix, latitude, longitude)
CITIES = (
    ("New York", "NY", "100", 40.7128, -74.0060), ("Los Angeles", "CA", "900", 34.0522, -118.2437),
    ("Chicago", "IL", "606", 41.8781, -87.6298), ("Houston", "TX", "770", 29.7604, -95.3698),
    ("Phoenix", "AZ", "850", 33.4484, -112.0740), ("Philadelphia", "PA", "191", 39.9526, -75.1652),
    ("San Antonio", "TX", "782", 29.4241, -98.4936), ("San Diego", "CA", "921", 32.7157, -117.1611),
    ("Dallas", "TX", "752", 32.7767, -96.7970), ("Denver", "CO", "802", 39.7392, -104.9903),
    ("Seattle", "WA", "981", 47.6062, -122.3321), ("Boston", "MA", "021", 42.3601, -71.0589),
    ("Atlanta", "GA", "303", 33.7490, -84.3880), ("Miami", "FL", "331", 25.7617, -80.1918),
    ("Minneapolis", "MN", "554", 44.9778, -93.2650), ("Portland", "OR", "972", 45.5152, -122.6784),
)


def company_ids(companies: int) -> list[str]:
    """The company ids `seed` uses; keys for these companies see the seeded assets."""
    return [f"company-{i}" for i in range(1, companies + 1)]


def assets(count: int, companies: int, *, seed: int = 42, now: float | None = None
           ) -> Iterator[tuple[str, str, float, float, str]]:
    rng = random.Random(seed)
    ids = company_ids(companies)
    end = time.time() if now is None else now
    # created_at spread over the last year, in ascending order like a table that grew over time
    span = 365 * 86400.0
    rand, choice, randint = rng.random, rng.choice, rng.randint
    for i in range(count):
        city, state, zip3, lat, lon = choice(CITIES)
        unit = f", {choice(UNITS)} {randint(1, 999)}" if rand() < 0.6 else ""
        plus4 = f"-{randint(1000, 9999)}" if rand() < 0.5 else ""
        address = f"{randint(1, 9999)} {choice(STREETS)}{unit}, {city}, {state} {zip3}{randint(0, 99):02d}{plus4}"
        ts = end - span + span * i / max(count, 1)
        created = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + ".000Z"
        yield (ids[i % len(ids)], address, round(lat + (rand() - 0.5) * 0.4, 6),
               round(lon + (rand() - 0.5) * 0.4, 6), created)
