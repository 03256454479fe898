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

/* Unroll the loop that follows completely when its trip count is a small
   constant (GCC does not at -O2, and the arrays it indexes then stay in
   memory: a store and a wider load per row that cannot be forwarded). */
#if defined(__clang__)
#define SP_UNROLL _Pragma("unroll")
#elif defined(__GNUC__)
#define SP_UNROLL _Pragma("GCC unroll 8")
#else
#define SP_UNROLL
#endif

#endif
