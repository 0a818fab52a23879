"""The lusynth KFP pipeline: DAG, fan-outs, task settings; compile / submit / local run."""
