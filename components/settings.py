"""The one setting every component shares: the container image it runs in.

``LUSYNTH_IMAGE`` (read when the pipeline is compiled) names the image built from
``infra/Dockerfile``; ``lusynth run`` ignores it (the local subprocess runner uses the installed
package). Components import lusynth inside their bodies so the same code runs in both places.
"""

import os

from lusynth import __version__

IMAGE = os.environ.get("LUSYNTH_IMAGE", f"localhost/lusynth:{__version__}-cpu")  # infra/build_image.sh tags this
