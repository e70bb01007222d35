"""Audio in, features and labels out: the core that transcription shares with the dataset factory, and the factory.

The core (all that ``model.transcribe`` imports from here):
    constants.py  sample rate, hop, bins and the figures derived from them
    errors.py     Mp3MidiError, the one domain error
    notes.py      Note, Part and Score records
    audio.py      decoding any recording to mono float32 (whole or streamed), MP3 encoding
    cqt.py        the constant-Q transform
    features.py   spectrogram(), the only feature function
    atomic.py     files written whole or not at all

The factory (MIDI -> performance -> rendering -> recording chain -> MP3 -> features and labels, in DuckDB):
    sources, corpus, procedural, midi_io, arrange, instruments: what is played
    performance, render, quiet_fluidsynth, synth, voice, renderers, recording_chain, recording, soundfonts: how it
        sounds
    labels, npz, preview, item, item_gate: one item's files
    jobs, pool, soundfont_preload, cluster, catalog, dataset_lock, splits, background, sigterm, allocator: jobs and
        their records
    coverage, export, recordings, playback, soundfont_upload: what the dashboard and the command line add
"""
