"""The dawemo Bridge plugin's C++ source and build script, installed as ``dawemo.bridge_src``
so that ``dawemo bridge install`` can build it where no binary ships."""
