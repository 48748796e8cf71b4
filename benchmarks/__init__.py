"""fkd-hf benchmarks: each module measures one claim and prints a markdown table (see benchmarks/RESULTS.md)."""
