// The API's request and response types, shared with the server and the web app.
global using RamPay.Contracts;
