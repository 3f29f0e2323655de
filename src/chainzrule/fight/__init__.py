"""The Fair Fight: specs, runner, statistics and report (GUIDE section 4)."""
