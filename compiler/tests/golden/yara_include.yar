include "other.yar"
