"""The project's one domain exception."""


class Mp3MidiError(Exception):
    """Raised for anything a user gave that cannot be used: a broken MIDI, a bad name, an unreadable soundfont.

    The message always says what was given and why it was refused, so it can be shown to the user as it is.
    """
