"""pyfluidsynth imported without its import-time announcement.

Where the environment has ``CI`` set, pyfluidsynth (imported by pretty_midi too) prints where it found the
FluidSynth library on standard output, mixed into a command's own output. Importing this module first imports it
with that print captured: the command lines do so at start, and the dataset workers' server preloads it before the
item code.
"""

import contextlib
import io

with contextlib.redirect_stdout(io.StringIO()):
    import fluidsynth  # noqa: F401
