// Intentionally empty: everything in CKVM is declared inline in the header.
#include "CKVM.h"
