"""Machine sounds: plugin chains whose parameters follow the music's emotion.

``plugins``  what a plugin offers: built-in pedalboard effects and external VST3/AU parameters.
``chain``    chain files (TOML): plugins, fixed settings and parameter lanes, validated with file:line errors.
``processor`` ``MachineChain``: the streaming stage that runs audio through a chain while its
             parameters follow model updates, click-free and independent of block size.
``render``   ``dawemo render``: offline, music file -> emotions -> machine-sound file through the chain.
``live``     the live path: a machine-sound input through the chain to JACK outputs.
"""
