#ifndef SKIFF_CHIREDIS_SHIM_H
#define SKIFF_CHIREDIS_SHIM_H
#include <hiredis/hiredis.h>
#include <hiredis/read.h>
#endif
