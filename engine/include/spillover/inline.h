/*
** inline.h: SP_INLINE, for the row loops written once with the column count
** as a parameter and inlined where it is a constant, so that the compiler
** unrolls them and keeps their accumulators in registers.
*/
#ifndef SPILLOVER_INLINE_H
#define SPILLOVER_INLINE_H

#if defined(__GNUC__)
#define SP_INLINE static inline __attribute__((always_inline))
#else
#define SP_INLINE static inline
#endif

#endif
