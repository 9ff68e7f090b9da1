
	synthetic
tokens