"""lusynth: does synthetic GAN data help, or safely replace, real lung-ultrasound data?"""

__version__ = "0.1.0"
