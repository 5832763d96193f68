"""Speech and language backends: each kind behind one small interface with an offline default."""
