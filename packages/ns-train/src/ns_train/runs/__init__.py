"""`ns run`: the Noisy Student loop over a run folder, its config, presets, records, report and status."""
