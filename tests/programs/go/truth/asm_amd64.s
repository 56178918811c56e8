#include "textflag.h"

// func asmAdd(a int64, b int64, s string) int64
// ABI0: a at 0(FP), b at 8(FP), s at 16(FP) (ptr) and 24(FP) (len), result at 32(FP).
TEXT ·asmAdd(SB), NOSPLIT, $0-40
	MOVQ a+0(FP), AX
	MOVQ b+8(FP), BX
	ADDQ BX, AX
	MOVQ s_len+24(FP), BX
	ADDQ BX, AX
	MOVQ AX, ret+32(FP)
	RET
