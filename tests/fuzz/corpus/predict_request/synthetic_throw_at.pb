
	synthetic
tokens

throw_at