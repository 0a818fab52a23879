"""KFP v2 components of lusynth: one per stage, each a thin wrapper over lusynth.stages."""
