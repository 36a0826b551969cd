"""Lightning callbacks of Shipyard: throughput, per-epoch seeding."""
