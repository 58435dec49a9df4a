"""Generation: from a prompt waveform to a continuation through the three stages."""
