module example.com/sigdump

go 1.19
