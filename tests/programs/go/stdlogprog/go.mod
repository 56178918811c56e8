module example.com/stdlogprog

go 1.21
