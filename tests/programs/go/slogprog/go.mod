module example.com/slogprog

go 1.21
